"""The audit store: exchanges chained per writer, envelope-encrypted, with a blind index.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("latency_total_ms", sa.Float, nullable=False),
        sa.Column("latency_detection_ms", sa.Float),
        sa.Column("latency_upstream_ms", sa.Float),
        sa.Column("entity_counts", sa.JSON, nullable=False),
        sa.Column("training_consent", sa.Boolean, nullable=False),
        sa.Column("target", sa.String(64)),
        sa.Column("writer_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("payload_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("key_id", sa.String(80)),
        sa.Column("wrapped_key", sa.LargeBinary),
        sa.Column("erased_at", UTC_TIME),
        sa.Column("payload_purged_at", UTC_TIME),
        sa.Column("original_request", sa.LargeBinary),
        sa.Column("sanitized_request", sa.LargeBinary),
        sa.Column("response", sa.LargeBinary),
        sa.Column("mapping", sa.LargeBinary),
        sa.UniqueConstraint("writer_id", "seq", name="uq_exchanges_writer_seq"),
    )
    for column in ("kind", "created_at", "client_id", "model", "status", "key_id"):
        op.create_index(f"ix_exchanges_{column}", "exchanges", [column])
    op.create_table(
        "subject_index",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("record_id", sa.String(32), primary_key=True),
    )
    op.create_index("ix_subject_index_record_id", "subject_index", ["record_id"])
    op.create_table(
        "chains",
        sa.Column("writer_id", sa.String(64), primary_key=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("base_seq", sa.Integer, nullable=False),
        sa.Column("base_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("head_seq", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("mac", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "log_secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(80), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "heartbeats",
        sa.Column("writer_id", sa.String(64), primary_key=True),
        sa.Column("seen_at", UTC_TIME, nullable=False),
    )


def downgrade() -> None:
    for table in ("heartbeats", "log_secrets", "chains", "subject_index", "exchanges"):
        op.drop_table(table)
