"""Settings: one typed declaration per setting, defaults for the embedded setup, env wins.

Sources, lowest to highest precedence: defaults here, a YAML file named by CITYCAM_CONFIG,
the embedded services' env file (written by `citycam up`), then environment variables
(CITYCAM_<SECTION>__<FIELD>, e.g. CITYCAM_KAFKA__BOOTSTRAP_SERVERS). Credentials only ever
come from the environment or that git-ignored env file.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
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
    opendata_username: str = Field(
        default="citycam_opendata", description="Open-data user: reads only open_data (exports)."
    )
    opendata_password: SecretStr = SecretStr("")
    database: str = "citycam"
    raw_ttl_days: int = Field(default=7, ge=1, description="TTL of raw detection rows.")


class SupersetSettings(BaseModel):
    """Apache Superset for the planners' dashboards, run from its own virtual environment."""

    venv: Path = Field(
        default=Path(".venv-superset"), description="Superset's own virtual environment."
    )
    data_dir: Path | None = Field(
        default=None, description="Metadata DB, secret key and logs; default <data_dir>/superset."
    )
    port: int = Field(default=0, ge=0, le=65535, description="Loopback port; 0: a free one.")
    workers: int = Field(default=2, ge=1, le=32, description="gunicorn worker processes.")
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Signs sessions, encrypts stored passwords; empty: generated once, kept "
        "in the data dir.",
    )
    metadata_uri: SecretStr = Field(
        default=SecretStr(""),
        description="Superset's metadata database (SQLAlchemy URI); empty: SQLite in the data dir.",
    )
    admin_username: str = "admin"
    admin_password: SecretStr = Field(
        default=SecretStr(""), description="Empty: generated once, kept in the data dir."
    )


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
    # matching accepts little overlap and a track confirms on its second sighting (its first
    # box already carries its id; confirming on the first cost precision, see
    # inference.tracking).
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
        default=2,
        ge=1,
        # From 3, ByteTrack returns a young track's second box without an id, as it does noise.
        le=2,
        description="Frames a track must be seen in a row to be confirmed; an unconfirmed "
        "track ends at its first miss. Its boxes carry its id from the first one on.",
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
    batch_rows: int = Field(default=20000, ge=1, description="Close a batch at this many messages.")
    batch_s: float = Field(
        default=2.0,
        gt=0,
        description="...or when it is this old and the batch before it is stored (under load "
        "batches grow towards batch_rows, spreading each validation run's fixed cost).",
    )
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    quality_gate: bool = Field(
        default=True,
        description="Validate each batch with the expectation suites; quarantine failing rows.",
    )


def positive_factors(factors: dict[str, float]) -> dict[str, float]:
    bad = {k: v for k, v in factors.items() if v <= 0}
    if bad:
        raise ValueError(f"PCU factors must be > 0, got {bad}")
    return factors


class PcuTable(BaseModel):
    """A versioned table of passenger-car-unit factors per vehicle class."""

    version: str = Field(min_length=1, description="Stored with every fact that applied it.")
    factors: dict[str, float]

    @field_validator("factors")
    @classmethod
    def _positive(cls, factors: dict[str, float]) -> dict[str, float]:
        return positive_factors(factors)


# TCVN 4054:2005 table 2, factors for converting vehicles to passenger cars. The standard is
# for roads outside cities and gives them per terrain: plain and hilly terrain (the default,
# with motorbike 0.3 as Vietnamese practice applies it to city counts too) and mountainous.
# Buses and trucks take the large (3+ axle, 25+ seat) row: a camera cannot tell axles.
TCVN_4054_PLAIN = PcuTable(
    version="tcvn4054-2005",
    factors={"car": 1.0, "motorbike": 0.3, "bicycle": 0.2, "bus": 2.5, "truck": 2.5},
)
TCVN_4054_MOUNTAIN = PcuTable(
    version="tcvn4054-2005-mountain",
    factors={"car": 1.0, "motorbike": 0.2, "bicycle": 0.2, "bus": 3.0, "truck": 3.0},
)


class AlertSettings(BaseModel):
    """Congestion and abnormal-flow alerts (streams.alerts): thresholds with hysteresis.

    An episode opens when its open condition holds for `*_open_minutes` minutes in a row and
    closes when its looser hold condition fails for `*_close_minutes` in a row, so a measure
    hovering around one threshold never makes an alert flap.
    """

    settle_minutes: int = Field(
        default=2,
        ge=1,
        le=30,
        description="A minute is evaluated once facts this many minutes later arrived from the "
        "same camera (by then its last re-emission is in); later facts for it are ignored.",
    )
    source_timeout_s: float = Field(
        default=180.0,
        gt=0,
        description="A camera's zone or line facts unheard of this long (wall clock) stop "
        "holding back the judgement of its minutes until they come back.",
    )
    max_gap_minutes: int = Field(
        default=10,
        ge=1,
        description="Minutes without data that close an open episode at its last known minute.",
    )
    silent_close_s: float = Field(
        default=900.0,
        gt=0,
        description="Wall-clock fallback of max_gap_minutes: a camera with an open episode or "
        "unjudged minutes and no fact for this long has its minutes judged and its episodes "
        "closed at their last known minute, when its camera-health reports have not shown it "
        "silent by then (ingest down too, or reports the facts never caught up with). Longer "
        "than max_gap_minutes, so a live camera back within the gap keeps its episode.",
    )
    min_frames: int = Field(default=3, ge=1, description="Fewer frames in a minute: no reading.")
    ongoing_every_minutes: int = Field(
        default=15,
        ge=0,
        description="Re-publish an open episode this often (0: only when its severity rises).",
    )
    severity_medium: float = Field(
        default=1.5, gt=1, description="Worst minute this many times past the open threshold."
    )
    severity_high: float = Field(default=2.0, gt=1)
    timezone: str = Field(
        default="Asia/Ho_Chi_Minh", description="Local time for hour-of-day and day type."
    )
    holidays: list[date] = Field(
        default=[], description="Local dates whose flow is learned and judged as a weekend's."
    )
    # Congestion, per zone: the zone's mean PCU (pedestrians weigh 0) and occupied share, and
    # the camera's mean crossing speed where it is calibrated and enough vehicles crossed.
    congestion_skip_zone_kinds: list[str] = Field(
        default=["parking", "footway"], description="Zone kinds never judged for congestion."
    )
    congestion_open_share: float = Field(default=0.9, gt=0, le=1)
    congestion_open_mean_pcu: float = Field(default=3.0, gt=0)
    congestion_open_speed_kmh: float = Field(default=10.0, gt=0)
    congestion_close_share: float = Field(default=0.7, gt=0, le=1)
    congestion_close_mean_pcu: float = Field(default=1.5, gt=0)
    congestion_close_speed_kmh: float = Field(default=20.0, gt=0)
    congestion_open_minutes: int = Field(default=3, ge=1)
    congestion_close_minutes: int = Field(default=5, ge=1)
    speed_min_samples: int = Field(
        default=3, ge=1, description="Fewer crossings with a speed in a minute: speed unknown."
    )
    # Abnormal flow, per camera: PCU per hour over all its lines, smoothed over
    # `flow_window_minutes`, against an exponentially weighted mean and variance learned per
    # local hour of day and day type (weekday; weekend or holiday).
    flow_window_minutes: int = Field(default=10, ge=1, le=60)
    flow_open_z: float = Field(default=4.0, gt=0)
    flow_close_z: float = Field(default=2.0, ge=0)
    flow_open_change: float = Field(
        default=0.5, ge=0, description="...and at least this far from the baseline, relatively."
    )
    flow_close_change: float = Field(default=0.25, ge=0)
    flow_open_minutes: int = Field(default=5, ge=1)
    flow_close_minutes: int = Field(default=10, ge=1)
    flow_min_history_days: int = Field(
        default=3, ge=1, description="Days a time-of-day bucket must have seen before it alerts."
    )
    flow_halflife_days: float = Field(
        default=14.0, gt=0, description="Half-life of the baseline, in days of the bucket's data."
    )
    seed_from_warehouse: bool = Field(
        default=True,
        description="Seed a camera's flow baselines from the warehouse's line_crossings_1m "
        "when the job first sees it with nothing learned (new or reset job), so it judges flow "
        "at once instead of after flow_min_history_days. Reads as the analyst user; a warehouse "
        "that cannot be read leaves the baselines to be learned from the stream.",
    )
    seed_history_days: int = Field(
        default=28,
        ge=1,
        le=366,
        description="Days of warehouse history, before the first minute the job sees, that "
        "seed the baselines.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        looser = [
            ("congestion_close_share", self.congestion_close_share <= self.congestion_open_share),
            (
                "congestion_close_mean_pcu",
                self.congestion_close_mean_pcu <= self.congestion_open_mean_pcu,
            ),
            (
                "congestion_close_speed_kmh",
                self.congestion_close_speed_kmh >= self.congestion_open_speed_kmh,
            ),
            ("flow_close_z", self.flow_close_z <= self.flow_open_z),
            ("flow_close_change", self.flow_close_change <= self.flow_open_change),
            ("severity_high", self.severity_high >= self.severity_medium),
        ]
        bad = [name for name, ok in looser if not ok]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: close thresholds must be looser than open ones "
                "(and severity_high >= severity_medium)"
            )
        return self

    @model_validator(mode="after")
    def _fallback_after_gap(self) -> Self:
        if self.silent_close_s <= self.max_gap_minutes * 60:
            raise ValueError(
                "silent_close_s must exceed max_gap_minutes: a live camera back within the gap "
                "keeps its episode"
            )
        return self


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
    # Detector label -> class of road users that are not vehicles (PCU 0). They are counted
    # at lines and in zones, not in density; a person riding a vehicle is never one of them.
    pedestrian_classes: dict[str, str] = {"person": "pedestrian"}
    # Passenger-car-unit factors: the default table (used for road classes without their own)
    # and tables per camera road_class (the registry's value, matched exactly).
    pcu_version: str = TCVN_4054_PLAIN.version
    pcu_factors: dict[str, float] = TCVN_4054_PLAIN.factors
    pcu_tables: dict[str, PcuTable] = Field(
        default={"mountain": TCVN_4054_MOUNTAIN},
        description="PCU table per camera road_class; other road classes use pcu_factors.",
    )
    # Line crossings (streams.crossings).
    crossing_band_px: float = Field(
        default=4.0,
        ge=0,
        description="Dead band each side of a counting line, in pixels of the geometry's "
        "frame_size: an anchor this close to the line is on neither side, so box jitter of a "
        "road user standing near the line is not counted as crossings.",
    )
    track_forget_s: float = Field(
        default=30.0,
        gt=0,
        description="A track unseen this long is forgotten (its state leaves the table).",
    )
    speed_span_s: float = Field(
        default=2.0,
        gt=0,
        description="Speed at a crossing: ground distance over at most this much of the "
        "track's anchor history before it.",
    )
    speed_min_span_s: float = Field(
        default=0.4, gt=0, description="Less anchor history than this gives no speed."
    )

    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="Congestion and abnormal-flow alerts."
    )

    @field_validator("pcu_factors")
    @classmethod
    def _positive(cls, factors: dict[str, float]) -> dict[str, float]:
        return positive_factors(factors)

    def factor(self, vehicle_class: str) -> float:
        try:
            return self.pcu_factors[vehicle_class]
        except KeyError:
            raise KeyError(f"no PCU factor for vehicle class {vehicle_class!r}") from None

    def pcu_table(self, road_class: str | None) -> PcuTable:
        """The PCU table for a camera's road class (the default table if it has none)."""
        if road_class is not None and road_class in self.pcu_tables:
            return self.pcu_tables[road_class]
        return PcuTable(version=self.pcu_version, factors=self.pcu_factors)

    @property
    def road_user_classes(self) -> dict[str, str]:
        """Detector label -> class for everything counted at lines and in zones."""
        return {**self.pedestrian_classes, **self.vehicle_classes}

    def pcu_factor(self, table: PcuTable, road_user_class: str) -> float:
        """The class's factor in the table; 0 for pedestrians, KeyError for unknown vehicles."""
        if road_user_class in table.factors:
            return table.factors[road_user_class]
        if road_user_class in self.pedestrian_classes.values():
            return 0.0
        raise KeyError(f"PCU table {table.version} has no factor for {road_user_class!r}")


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
    superset: SupersetSettings = SupersetSettings()

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
