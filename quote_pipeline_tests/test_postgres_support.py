"""The test suite's own PostgreSQL fallback: a throwaway cluster when no server runs."""

import sqlalchemy as sa

from quote_pipeline_tests.support.postgres import _throwaway_cluster, create_database


def test_a_throwaway_cluster_can_be_made_used_and_removed() -> None:
    server = _throwaway_cluster()
    try:
        url = create_database(server.url, "throwaway_check")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select current_database()")) == "throwaway_check"
        engine.dispose()
    finally:
        server.stop()
    assert server.how == "throwaway cluster"
