"""Conversation tests: Rasa test stories, checked end to end (NLU and dialogue)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

STORIES = Path(__file__).parent / "conversations"


def test_every_conversation_goes_as_written(agent, tmp_path, capsys):
    from rasa.core.test import test as rasa_test

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(rasa_test(
            str(STORIES), agent, out_directory=str(tmp_path), e2e=True,
            disable_plotting=True, errors=True, warnings=False,
        ))
    finally:
        loop.close()
    report = json.loads((tmp_path / "story_report.json").read_text())
    summary = report["conversation_accuracy"]
    with capsys.disabled():
        print(f"\nconversations: {summary['correct']}/{summary['total']} as written")
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert summary["total"] >= 30
    assert summary["correct"] == summary["total"], details
