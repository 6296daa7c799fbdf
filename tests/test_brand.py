"""The brand profile loads, describes itself, and rejects bad files clearly."""

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from bot.brand import DEFAULT_PROFILE, BrandProfileError, load_brand


def write_profile(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load(DEFAULT_PROFILE.read_text())
    raw.update(changes)
    path = tmp_path / "brand.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_profile_fills_every_brand_slot_used_by_the_domain():
    values = load_brand().template_values()
    domain = yaml.safe_load((DEFAULT_PROFILE.parent / "domain.yml").read_text())
    brand_slots = {
        name for name, slot in domain["slots"].items()
        if name.startswith("brand_") or name in values
    }
    assert brand_slots == set(values)
    assert all(values.values())


def test_hours_are_described_like_a_person_would():
    assert load_brand().opening_hours.describe() == "Mon-Fri 8am-8pm, Sat 9am-5pm (UK time)"


@pytest.mark.parametrize(
    ("moment", "is_open", "back"),
    [
        (datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc), True, "tomorrow at 8am"),
        (datetime(2026, 11, 23, 21, 0, tzinfo=timezone.utc), False, "tomorrow at 8am"),
        (datetime(2026, 11, 21, 18, 0, tzinfo=timezone.utc), False, "on Monday at 8am"),
        (datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc), False, "at 8am"),
        # Summer time: 07:30 UTC is 08:30 in London.
        (datetime(2026, 7, 1, 7, 30, tzinfo=timezone.utc), True, "tomorrow at 8am"),
    ],
)
def test_business_hours_know_when_the_team_is_back(moment, is_open, back):
    hours = load_brand().opening_hours
    assert hours.is_open(moment) is is_open
    assert hours.describe_return(moment) == back


def test_order_numbers_are_normalised_to_the_brand_format():
    fmt = load_brand().order_number
    for written in ("JL-204815", "jl204815", "JL 204815", "#204815", "204815"):
        assert fmt.normalise(written) == "JL-204815"
    assert fmt.normalise("JL-2048") is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hours": {"mon": "9-5"}}, "hours.mon"),
        ({"hours": {"funday": "09:00-17:00"}}, "unknown weekday"),
        ({"hours": {"mon": "17:00-09:00"}}, "closing time"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"contacts": {"phone": "1", "email": "not-an-email"}}, "contacts.email"),
        ({"sla_minutes": {"urgent": 5}}, "missing priorities"),
        ({"payment_methods": []}, "payment_methods"),
    ],
)
def test_a_broken_profile_names_what_is_wrong(tmp_path, changes, message):
    with pytest.raises(BrandProfileError, match=message):
        load_brand(write_profile(tmp_path, **changes))


def test_missing_or_unparseable_profile_is_reported(tmp_path):
    with pytest.raises(BrandProfileError, match="not found"):
        load_brand(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("name: [unclosed")
    with pytest.raises(BrandProfileError, match="not valid YAML"):
        load_brand(bad)


def test_brand_profile_env_var_reskins_the_bot(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAND_PROFILE", str(write_profile(tmp_path, name="Other Brand")))
    assert load_brand().template_values()["brand_name"] == "Other Brand"


def test_agents_sign_in_the_brands_own_words(tmp_path):
    assert load_brand().signed("On it!", "Sam Patel") == "On it!\n\n— Sam, Juniper Lane"
    other = load_brand(write_profile(tmp_path, agent_signature="{agent} at {brand} 💬"))
    assert other.signed("On it!", "Priya") == "On it!\n\nPriya at Juniper Lane 💬"


def test_a_signature_with_an_unknown_placeholder_is_refused(tmp_path):
    with pytest.raises(BrandProfileError, match="agent_signature"):
        load_brand(write_profile(tmp_path, agent_signature="— {agent_name}"))
