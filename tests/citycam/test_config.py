from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from citycam.config import KafkaSettings, Settings, StreamsSettings


def test_env_overrides_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYCAM_KAFKA__BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("CITYCAM_WAREHOUSE__PASSWORD", "s3cret")
    monkeypatch.setenv("CITYCAM_STREAMS__PCU_FACTORS", '{"car": 1.0, "motorbike": 0.25}')
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "k1:9093,k2:9093"
    assert settings.warehouse.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)  # secrets never show in logs
    assert settings.streams.factor("motorbike") == 0.25


def test_yaml_config_file_is_below_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "citycam.yaml"
    config.write_text("inference:\n  batch_size: 16\n  device: cpu\n")
    monkeypatch.setenv("CITYCAM_CONFIG", str(config))
    monkeypatch.setenv("CITYCAM_INFERENCE__DEVICE", "cuda")
    settings = Settings()
    assert settings.inference.batch_size == 16
    assert settings.inference.device == "cuda"


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYCAM_CONFIG", "/nonexistent/citycam.yaml")
    with pytest.raises(FileNotFoundError, match="CITYCAM_CONFIG"):
        Settings()


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYCAM_INFERENCE__BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        Settings()


def test_pcu_factors_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="PCU factors must be > 0"):
        StreamsSettings(pcu_factors={"car": 0})


def test_motorbike_pcu_default_is_vietnamese_practice() -> None:
    assert StreamsSettings().factor("motorbike") == 0.3


def test_sasl_settings_reach_librdkafka() -> None:
    conf = KafkaSettings(
        bootstrap_servers="b:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password="p",
        ssl_ca_location=Path("/ca.pem"),
    ).client_config()
    assert conf == {
        "bootstrap.servers": "b:9094",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
        "ssl.ca.location": "/ca.pem",
    }
