"""`rasa data validate` passes, and every warning it gives is explained.

Rasa cannot see that a custom action sends a response, so it reports those
responses as unused; it reports a retrieval intent listed in domain.yml (as
its docs require) as duplicated; and it reports the intents no customer types
(the gateway's hand-back event, the rating buttons) as missing from the NLU
data. Those three are checked to be exactly that; any other warning fails the
test.
"""

import re
import subprocess
import sys

from bot.brand import PROJECT_ROOT
from bot.handoff_contract import RATING_INTENT, RESOLVED_INTENT

UNUSED = re.compile(r"The utterance '([\w/]+)' is not used in any story or rule")
RASA_DEFAULT_RESPONSES = {"utter_default"}  # sent by action_default_fallback
RETRIEVAL_DUPLICATE = "duplicated intents have been found across multiple domain files: faq"
NO_EXAMPLES = re.compile(r"The intent '(\w+)' is listed in the domain file, but is not found "
                         r"in the NLU training data")
NOT_TYPED = {RESOLVED_INTENT, RATING_INTENT}  # an event and a button, not words


def sent_by_our_actions(response: str) -> bool:
    """A response our action code names, or one a form asks for a slot."""
    if response.startswith("utter_ask_") or response in RASA_DEFAULT_RESPONSES:
        return True
    source = "\n".join(p.read_text() for p in (PROJECT_ROOT / "actions").glob("*.py"))
    if f'"{response}"' in source:
        return True
    # actions/cases.py builds utter_case_<topic> from CASE_DETAILS.
    from actions.cases import CASE_DETAILS

    return response.startswith("utter_case_") and response[len("utter_case_"):] in CASE_DETAILS


def test_rasa_data_validate_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "data", "validate"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    warnings = re.findall(r"UserWarning: (.+(?:\n(?!\S*\[0m|\S+\.py:\d+).+)*)", output)
    unexplained = []
    for warning in warnings:
        unused = UNUSED.search(warning)
        if unused and sent_by_our_actions(unused.group(1)):
            continue
        if RETRIEVAL_DUPLICATE in warning:
            continue
        missing = NO_EXAMPLES.search(warning)
        if missing and missing.group(1) in NOT_TYPED:
            continue
        unexplained.append(warning.strip())
    assert not unexplained, "\n".join(unexplained)
