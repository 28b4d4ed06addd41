"""Settings: one typed declaration per setting, defaults for the embedded setup, env wins.

Sources, lowest to highest precedence: defaults here, a YAML file named by CITYCAM_CONFIG,
the embedded services' env file (written by `citycam up`), then environment variables
(CITYCAM_<SECTION>__<FIELD>, e.g. CITYCAM_KAFKA__BOOTSTRAP_SERVERS). Credentials only ever
come from the environment or that git-ignored env file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_DATA_DIR = Path(".data")
SERVICES_ENV_FILE = DEFAULT_DATA_DIR / "run" / "services.env"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    partitions: int = Field(default=6, ge=1, description="Default partitions per topic.")
    replication_factor: int = Field(default=1, ge=1)
    session_timeout_s: int = Field(default=6, ge=1, le=300)

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producers, consumers and the admin client."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = str(self.ssl_ca_location)
        return conf


class WarehouseSettings(BaseModel):
    url: str = Field(default="http://127.0.0.1:8123", description="ClickHouse HTTP(S) URL.")
    username: str = "citycam_writer"
    password: SecretStr = SecretStr("")
    analyst_username: str = "citycam_analyst"
    analyst_password: SecretStr = SecretStr("")
    database: str = "citycam"
    raw_ttl_days: int = Field(default=7, ge=1, description="TTL of raw detection rows.")


class IngestSettings(BaseModel):
    frame_store: str = Field(default="", description="Frame store URI; default <data_dir>/frames.")
    frame_retention_hours: float = Field(default=24.0, gt=0)
    frame_store_max_gb: float = Field(default=20.0, gt=0)
    jpeg_quality: int = Field(default=85, ge=30, le=100)
    open_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    replay_start: AwareDatetime | None = Field(
        default=None,
        description="Capture time given to a replayed file's first frame (default: when the "
        "file is opened). Files replayed faster than real time run ahead of the clock.",
    )


class InferenceSettings(BaseModel):
    model: str = Field(default="ssd_mobilenet_v2_coco", description="Detector spec.")
    device: str = Field(default="auto", description="auto | cpu | cuda[:n]")
    batch_size: int = Field(default=8, ge=1, le=256)
    batch_wait_s: float = Field(default=0.2, gt=0)
    score_threshold: float = Field(default=0.3, ge=0, le=1)
    torch_threads: int = Field(default=1, ge=1, description="CPU threads for torch.")
    # ByteTrack, tuned for cameras sampled at 2-5 fps: objects move far between frames, so
    # matching accepts little overlap and a track confirms on its second sighting.
    track_activation_threshold: float = Field(
        default=0.4, ge=0, le=1, description="Score a box needs to start a track."
    )
    track_high_score_threshold: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="Boxes below are only used to continue tracks (ByteTrack's second stage).",
    )
    track_min_iou: float = Field(
        default=0.05, ge=0, le=1, description="Least IoU between a track's prediction and a box."
    )
    track_min_consecutive_frames: int = Field(
        default=2, ge=1, description="Frames a track must be seen in a row before it gets an id."
    )
    track_lost_buffer_s: float = Field(
        default=2.0, gt=0, description="How long a track survives unseen (occlusion, misses)."
    )
    track_frame_rate: float = Field(
        default=5.0,
        gt=0,
        description="Nominal sampled fps: the step ByteTrack's motion noise is tuned per; "
        "actual steps follow capture times.",
    )
    track_max_gap_s: float = Field(
        default=10.0,
        gt=0,
        description="A camera's tracks restart when capture time jumps more than this, or "
        "goes backwards (camera restart, replay).",
    )


class SinkSettings(BaseModel):
    group_id: str = Field(default="citycam-sink", description="Kafka consumer group.")
    batch_rows: int = Field(default=5000, ge=1, description="Close a batch at this many messages.")
    batch_s: float = Field(default=2.0, gt=0, description="...or when it is this old.")
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    quality_gate: bool = Field(
        default=True,
        description="Validate each batch with the expectation suites; quarantine failing rows.",
    )


class StreamsSettings(BaseModel):
    window_s: int = Field(default=60, ge=1, description="Tumbling window length.")
    window_expires_s: int = Field(default=3600, ge=60, description="How late a window updates.")
    flush_interval_s: float = Field(
        default=5.0, gt=0, description="Emit changed windows this often."
    )
    min_score: float = Field(default=0.4, ge=0, le=1, description="Boxes below are not counted.")
    # Detector label -> vehicle class counted in facts.
    vehicle_classes: dict[str, str] = {
        "car": "car",
        "motorcycle": "motorbike",
        "bicycle": "bicycle",
        "bus": "bus",
        "truck": "truck",
    }
    # Passenger-car-unit factors, TCVN 4054:2005 (plain terrain); motorbike 0.3 as in
    # Vietnamese practice.
    pcu_version: str = "tcvn4054-2005"
    pcu_factors: dict[str, float] = {
        "car": 1.0,
        "motorbike": 0.3,
        "bicycle": 0.2,
        "bus": 2.5,
        "truck": 2.5,
    }

    @field_validator("pcu_factors")
    @classmethod
    def _positive(cls, factors: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in factors.items() if v <= 0}
        if bad:
            raise ValueError(f"PCU factors must be > 0, got {bad}")
        return factors

    def factor(self, vehicle_class: str) -> float:
        try:
            return self.pcu_factors[vehicle_class]
        except KeyError:
            raise KeyError(f"no PCU factor for vehicle class {vehicle_class!r}") from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITYCAM_",
        env_nested_delimiter="__",
        env_file=SERVICES_ENV_FILE,
        extra="ignore",
    )

    data_dir: Path = DEFAULT_DATA_DIR
    cameras_file: Path = Path(__file__).parent / "demo" / "cameras.yaml"
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0: no metrics endpoint.")
    kafka: KafkaSettings = KafkaSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    ingest: IngestSettings = IngestSettings()
    inference: InferenceSettings = InferenceSettings()
    streams: StreamsSettings = StreamsSettings()
    sink: SinkSettings = SinkSettings()

    @property
    def frame_store_uri(self) -> str:
        return self.ingest.frame_store or (self.data_dir / "frames").resolve().as_uri()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = os.environ.get("CITYCAM_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"CITYCAM_CONFIG names {config_file}, which does not exist")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
