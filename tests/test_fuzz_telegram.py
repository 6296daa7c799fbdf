"""The Telegram webhook under generated updates: never a 5xx, and each message stored once.

The gateway runs in webhook mode against the loopback fake Bot API (which it needs to
start: getMe, setWebhook, and what it sends back). Updates are posted to the webhook
route as Telegram would, with its secret header, or without it.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Tuple

import pytest
from hypothesis import strategies as st

from bot.gateway.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from tests import fuzz_support as fuzz
from tests.fuzz_support import budget, dumps, hostile_texts, json_scalars, seeded_gateway

SECRET = "fuzz-webhook-secret"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with seeded_gateway(tmp_path_factory.mktemp("fuzz-telegram"), telegram=True) as seeded:
        yield seeded
        assert seeded.probe.healthy(), "the gateway stopped serving"


# --- updates, well-formed and not -----------------------------------------------------------

ids = st.one_of(st.integers(1, 2**40), st.integers(-(2**63), 2**63), st.integers())
dates = st.one_of(st.integers(1_500_000_000, 1_900_000_000), st.integers(), st.just(-1))
# What Telegram itself delivers: valid Unicode without NUL; names of 1-64 characters,
# usernames of 5-32 letters, digits and _, texts of up to 4096 characters.
_unicode = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
human_texts = st.one_of(st.text(alphabet=_unicode, min_size=1, max_size=200),
                        st.text(alphabet=_unicode, min_size=4000, max_size=4096)).filter(str.strip)
human_names = st.text(alphabet=_unicode, min_size=1, max_size=64)
usernames = st.from_regex(r"[A-Za-z0-9_]{5,32}", fullmatch=True)


def maybe_wrong(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the right type; sometimes any JSON scalar instead."""
    return st.one_of(strategy, strategy, strategy, json_scalars())


def users(wrong: bool = True) -> st.SearchStrategy[Dict[str, Any]]:
    """Any user object (``wrong``: odd names and types too), or one as Telegram sends it."""
    if not wrong:
        return st.fixed_dictionaries(
            {"id": st.integers(1, 2**40), "is_bot": st.just(False), "first_name": human_names},
            optional={"last_name": human_names, "username": usernames,
                      "language_code": st.sampled_from(["en", "nl", "pt-br"])})
    w = maybe_wrong
    return st.fixed_dictionaries(
        {"id": w(ids), "is_bot": w(st.booleans()), "first_name": w(hostile_texts(80))},
        optional={"last_name": w(hostile_texts(40)), "username": w(hostile_texts(40)),
                  "language_code": w(st.sampled_from(["en", "nl", "", "x" * 50]))})


def chats(wrong: bool = True) -> st.SearchStrategy[Dict[str, Any]]:
    w = maybe_wrong if wrong else (lambda s: s)
    return st.fixed_dictionaries(
        {"id": w(ids), "type": w(st.one_of(st.sampled_from(["private", "group", "supergroup",
                                                           "channel"]), hostile_texts(20)))},
        optional={"first_name": w(hostile_texts(40)), "title": w(hostile_texts(40))})


def media() -> Dict[str, st.SearchStrategy]:
    file = st.fixed_dictionaries({"file_id": hostile_texts(30),
                                  "file_unique_id": hostile_texts(20)},
                                 optional={"width": ids, "height": ids, "file_size": ids})
    return {
        "photo": st.lists(file.map(lambda f: {"width": 90, "height": 90, **f}), max_size=3),
        "sticker": file.map(lambda f: {"type": "regular", "width": 512, "height": 512,
                                       "is_animated": False, "is_video": False, **f}),
        "voice": file.map(lambda f: {"duration": 3, **f}),
        "document": file,
        "location": st.fixed_dictionaries({"latitude": st.floats(), "longitude": st.floats()}),
        "contact": st.fixed_dictionaries({"phone_number": hostile_texts(20),
                                          "first_name": hostile_texts(20)}),
    }


def messages(depth: int = 1) -> st.SearchStrategy[Dict[str, Any]]:
    optional = {"from": users(), "text": maybe_wrong(hostile_texts()),
                "caption": maybe_wrong(hostile_texts()), "edit_date": maybe_wrong(dates),
                "entities": st.lists(st.fixed_dictionaries(
                    {"type": st.sampled_from(["bot_command", "bold", "url", "nonsense"]),
                     "offset": st.integers(-5, 5000), "length": st.integers(-5, 5000)}),
                    max_size=3),
                "reply_markup": st.fixed_dictionaries({"inline_keyboard": st.lists(st.lists(
                    st.fixed_dictionaries({"text": hostile_texts(30)},
                                          optional={"callback_data": hostile_texts(70)}),
                    max_size=2), max_size=2)}),
                **{k: maybe_wrong(v) for k, v in media().items()}}
    if depth:
        optional["reply_to_message"] = messages(depth - 1)
    return st.fixed_dictionaries(
        {"message_id": maybe_wrong(ids), "date": maybe_wrong(dates), "chat": chats()},
        optional=optional)


def callback_queries() -> st.SearchStrategy[Dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": maybe_wrong(st.one_of(ids.map(str), hostile_texts(40))), "from": users(),
         "chat_instance": maybe_wrong(hostile_texts(20))},
        optional={"message": messages(0), "data": maybe_wrong(hostile_texts(80))})


def chat_member_updates() -> st.SearchStrategy[Dict[str, Any]]:
    member = st.fixed_dictionaries({"user": users(), "status": st.sampled_from(
        ["member", "kicked", "left", "administrator", "restricted", "bogus"])})
    return st.fixed_dictionaries({"chat": chats(), "from": users(), "date": dates,
                                  "old_chat_member": member, "new_chat_member": member})


def any_updates() -> st.SearchStrategy[Dict[str, Any]]:
    kinds = {"message": messages(), "edited_message": messages(),
             "callback_query": callback_queries(), "my_chat_member": chat_member_updates(),
             "channel_post": messages(0), "inline_query": st.fixed_dictionaries(
                 {"id": hostile_texts(10), "from": users(), "query": hostile_texts()})}
    one = st.sampled_from(sorted(kinds)).flatmap(
        lambda kind: kinds[kind].map(lambda value: {kind: value}))
    return st.builds(lambda update_id, first, more, junk: {"update_id": update_id, **first,
                                                           **more, **junk},
                     maybe_wrong(ids), one,
                     st.one_of(st.just({}), st.just({}), one),
                     st.dictionaries(hostile_texts(12), json_scalars(), max_size=2))


ANY_UPDATES = any_updates()


@st.composite
def webhook_posts(draw):  # noqa: ANN001, ANN201
    update = draw(ANY_UPDATES)
    body = draw(st.one_of(st.just(dumps(update)), st.just(dumps(update)), st.just(dumps(update)),
                          fuzz.bodies(fuzz.json_values())))
    secret = draw(st.sampled_from([SECRET, SECRET, SECRET, "", "wrong", SECRET + " ",
                                   SECRET.upper()]))
    sent = {"Content-Type": "application/json", **({SECRET_HEADER: secret} if secret else {})}
    return body, sent, secret == SECRET


def test_any_update_gets_an_answer_not_a_server_error(gw):
    """Every update shape, broken types, missing fields and garbage bodies: < 500."""
    def body(example: Tuple[Any, ...]) -> None:
        content, sent, right_secret = example
        answer = gw.probe.send("POST", WEBHOOK_PATH, content, sent)
        if not right_secret:
            assert answer.status in (403, 413), (answer.status, answer.text)
        elif answer.status not in (400, 413):
            assert answer.status == 200 and answer.json() == {"ok": True}, answer.text

    fuzz.run(budget(60, 8_000), webhook_posts(), body, gw.crash_log)


# --- well-formed private messages: stored once, however often they come ----------------------

CHATS = itertools.count(7_000_000_001)
UPDATES = itertools.count(50_000_001)


@st.composite
def private_messages(draw):  # noqa: ANN001, ANN201
    """A customer's private text message or button press, as Telegram delivers it."""
    user = draw(users(wrong=False))
    message = {"message_id": draw(st.integers(1, 2**31 - 1)),
               "date": draw(st.integers(1_600_000_000, 1_900_000_000)),
               "chat": {"type": "private", "first_name": "Amara"}, "from": user}
    kind = draw(st.sampled_from(["message", "message", "edited_message", "callback_query"]))
    if kind == "callback_query":
        data = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz/_{}\":0123456789 ", min_size=1,
                            max_size=60).filter(str.strip))
        update = {"callback_query": {"id": str(draw(st.integers(1, 2**62))), "from": user,
                                     "chat_instance": "-42", "data": data,
                                     "message": {**message, "from": {"id": 123456,
                                                                     "is_bot": True,
                                                                     "first_name": "Juniper"}}}}
    else:
        message["text"] = draw(human_texts)
        if kind == "edited_message":
            message["edit_date"] = message["date"] + draw(st.integers(1, 10_000))
        update = {kind: message}
    again = draw(st.lists(st.sampled_from(["same update", "new update_id"]), max_size=3))
    return update, kind, again


def _with_chat(update: Dict[str, Any], chat_id: int) -> Dict[str, Any]:
    import copy

    update = copy.deepcopy(update)
    for value in update.values():
        message = value.get("message", value)
        message["chat"]["id"] = chat_id
        if "from" in value and "callback_query" in update:
            value["from"]["id"] = chat_id
    return update


def test_private_messages_are_stored_exactly_once(gw):
    """Redelivery (same update, or the same message in a new update) stays one row."""
    store = gw.store

    def body(example: Tuple[Any, ...]) -> None:
        update, kind, again = example
        chat = next(CHATS)
        update = {"update_id": next(UPDATES), **_with_chat(update, chat)}
        headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET}
        first = gw.probe.send("POST", WEBHOOK_PATH, dumps(update), headers)
        assert first.status == 200, first.text
        for how in again:
            if how == "new update_id":
                update = {**update, "update_id": next(UPDATES)}
            repeat = gw.probe.send("POST", WEBHOOK_PATH, dumps(update), headers)
            assert repeat.status == 200, repeat.text
        inbound = [m for m in store.transcript(f"telegram:{chat}") if m.direction == "in"]
        assert len(inbound) == 1, (kind, [m.text for m in inbound])

    fuzz.run(budget(50, 1_500), private_messages(), body, gw.crash_log)


def test_a_wrong_secret_stores_nothing(gw):
    def body(example: Tuple[Any, ...]) -> None:
        (update, _kind, _again), secret = example
        chat = next(CHATS)
        update = {"update_id": next(UPDATES), **_with_chat(update, chat)}
        sent = {"Content-Type": "application/json", **({SECRET_HEADER: secret} if secret else {})}
        answer = gw.probe.send("POST", WEBHOOK_PATH, dumps(update), sent)
        assert answer.status == 403, answer.text
        assert gw.store.conversation(f"telegram:{chat}") is None

    fuzz.run(budget(20, 500), st.tuples(private_messages(), st.one_of(
        st.sampled_from(["", "wrong", SECRET[:-1], SECRET + "x"]),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=60))),
        body, gw.crash_log)


def test_the_fuzzed_telegram_gateway_logged_no_crash(gw):
    gw.served.run(gw.served.app.ctx.gateway.idle())
    assert gw.crash_log.records == [], gw.crash_log.records[:3]
