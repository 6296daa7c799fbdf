"""The chaos benchmark, short: the scaled stack loses, repeats and reorders nothing while
a gateway and a Rasa server are kill -9ed (bench/chaos.py; `make chaos` is the full run)."""

from __future__ import annotations

import pytest

from tests.conftest import service_or_skip

pytestmark = pytest.mark.model


async def test_the_scaled_stack_survives_kill_9_of_a_gateway_and_a_rasa(model_path, tmp_path):
    service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    service_or_skip("Redis", "127.0.0.1", 6379)
    from bench.chaos import Config, run, summary_line

    result = await run(Config(
        customers=40, messages=200, rate=10.0, replicas=2, kill=("gateway1", "rasa1"),
        db_restart=False, telegram_faults=True, takeover=False, drain_seconds=150.0,
        wait_for_restarts=False, report=None, work=tmp_path))
    print(summary_line(result))
    assert result["messages"] == 200
    assert result["kills"] == ["gateway1", "rasa1"]
    assert result["restarted_running"] == ["gateway1", "rasa1"]
    assert result["lost"] == 0, (result["lost_by_reason"], result["lost_examples"],
                                 result.get("lost_logs"), result["timeline"])
    assert result["duplicated_to_rasa"] == 0
    assert result["never_in_rasa"] == 0  # every processed message is a turn in the tracker store
    assert result["duplicated_to_customers"] == 0, result["duplicate_examples"]
    assert result["reordered"] == 0
    assert result["telegram_sends_unexpected"] == 0
    assert result["telegram_sends_missing"] == 0
