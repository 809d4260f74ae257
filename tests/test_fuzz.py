"""Property-based tests: random and malformed input to the dataset and config loaders.

The contract: a loader either succeeds with a value the rest of ppoqa can use, or raises our
own error type (which the CLI prints as one line). Any other exception is a bug.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ppo_cli.config import Config, apply_overrides, config_to_yaml, load_config_file, validate
from ppo_cli.core.rundir import write_yaml
from ppo_cli.errors import ConfigError, DatasetError
from ppo_cli.textqa.data import QADataset, Vocabulary, load_dataset, parse_dataset, tokenize
from ppo_cli.textqa.env import QATask

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Plain values YAML can carry, nested: what a user's file may hold where we expect text.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Fragments that exercise YAML's corners: anchors, tags, flow style, booleans, documents.
YAML_PIECES = [
    "pairs",
    "question",
    "answer",
    "level",
    "rewards",
    "max_answer_tokens",
    "name",
    ": ",
    ":",
    "- ",
    "\n",
    "  ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!python/object:os.system ",
    "!!set ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    '"',
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "yes",
    "no",
    "1e400",
    ".nan",
    "-.inf",
    "0x1F",
    "~",
    "|\n",
    ">\n",
    "#",
    "\t",
    "é",
    "\u2028",
    "What is 2+2?",
    "4",
]
yaml_like = st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join)


def check_dataset(ds: QADataset) -> None:
    """A dataset the loader accepted must work downstream and survive the run directory."""
    assert ds.pairs
    for pair in ds.pairs:
        assert tokenize(pair.question) and tokenize(pair.answer)
        assert len(pair.answer_tokens) <= ds.max_answer_tokens
    vocab = Vocabulary.from_dataset(ds)
    task = QATask(ds, vocab)
    assert task.prompts.shape[0] == len(ds.pairs)
    # train writes dataset.to_dict() into the run; eval/ask re-read it and compare fingerprints
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.yaml"
        write_yaml(path, ds.to_dict())
        again = load_dataset(path)
    assert again.fingerprint() == ds.fingerprint()
    assert again.max_answer_tokens == ds.max_answer_tokens


def parse_or_dataset_error(text: str) -> None:
    try:
        ds = parse_dataset(text, "fuzz.yaml")
    except DatasetError as exc:
        assert exc.message.startswith("fuzz.yaml")
        return
    check_dataset(ds)


@FUZZ
@given(st.text(max_size=200))
def test_dataset_random_text(text: str) -> None:
    parse_or_dataset_error(text)


@FUZZ
@given(yaml_like)
@example("pairs: [&a {question: x, answer: y}, *a]")
@example("a: &a [*a]")  # a recursive alias
@example("pairs:\n- {question: yes, answer: no}")
@example("pairs:\n- {question: 'q', answer: '\u2028'}")
def test_dataset_yaml_fragments(text: str) -> None:
    parse_or_dataset_error(text)


@FUZZ
@given(values)
def test_dataset_random_structure(doc: Any) -> None:
    parse_or_dataset_error(yaml.safe_dump(doc, allow_unicode=True))


pair_entries = st.dictionaries(
    st.sampled_from(["question", "answer", "level", "extra"]) | st.text(max_size=5),
    values,
    max_size=4,
)
near_valid = st.fixed_dictionaries(
    {"pairs": st.lists(pair_entries | values, max_size=4)},
    optional={
        "max_answer_tokens": values,
        "rewards": st.dictionaries(
            st.sampled_from(["correct", "overlap", "wrong", "step_penalty", "x"]), values
        )
        | values,
        "name": values,
        "description": values,
    },
)
valid_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
)
mostly_valid = st.fixed_dictionaries(
    {
        "pairs": st.lists(
            st.fixed_dictionaries(
                {"question": valid_text, "answer": valid_text},
                optional={"level": st.integers(-1, 5)},
            ),
            min_size=1,
            max_size=5,
        )
    },
    optional={"max_answer_tokens": st.integers(0, 70), "name": valid_text},
)


@FUZZ
@given(near_valid | mostly_valid)
def test_dataset_near_valid_structure(doc: dict[str, Any]) -> None:
    parse_or_dataset_error(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.binary(max_size=300))
def test_dataset_random_bytes_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.yaml"
        path.write_bytes(data)
        try:
            ds = load_dataset(path)
        except DatasetError as exc:
            assert str(path) in exc.message
            return
    check_dataset(ds)


def test_dataset_alias_bomb_is_quick_and_short() -> None:
    """A 'billion laughs' document must not be expanded into an error message."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    for key in ("max_answer_tokens", "name", "rewards", "pairs"):
        text = "\n".join(lines) + f"\n{key}: *a8\n"
        if key != "pairs":
            text += "pairs: [{question: q, answer: a}]\n"
        try:
            parse_dataset(text, "bomb.yaml")
        except DatasetError as exc:
            assert len(exc.message) < 300
        else:
            raise AssertionError("an alias bomb was accepted")


# --- config loader ---------------------------------------------------------------------------

FIELDS = sorted(Config.__dataclass_fields__)
config_docs = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10) | st.integers(), values, max_size=6
)
config_values = st.dictionaries(
    st.sampled_from(FIELDS),
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from(["lstm", "transformer", "mlp", "cpu", "auto", "sync", "text-qa", ""]),
    max_size=8,
)


def load_apply_validate(path: Path) -> None:
    try:
        overrides = load_config_file(path)
        cfg = validate(apply_overrides(Config(), overrides, str(path)), str(path))
    except ConfigError as exc:
        assert exc.message and exc.hint
        assert len(exc.message) < 400
        return
    # train writes the config into the run; eval/ask/--resume read it back
    again = apply_overrides(Config(), yaml.safe_load(config_to_yaml(cfg)), "config.yaml")
    assert again == cfg


@FUZZ
@given(config_docs | config_values)
def test_config_random_mapping(doc: dict[Any, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        load_apply_validate(path)


@FUZZ
@given(st.binary(max_size=200) | yaml_like.map(str.encode))
@example(b"learning_rate: 1e400\n")
@example(b"seed: -1\n")
@example(b"num_episodes: 1e30\n")
@example(b"iterations: .nan\n")
@example(b"a: &a [*a]\nlearning_rate: *a\n")
def test_config_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(data)
        load_apply_validate(path)


@FUZZ
@given(config_values)
def test_config_overrides_as_flags(overrides: dict[str, Any]) -> None:
    """The same values arriving as flags (no YAML in between)."""
    try:
        validate(apply_overrides(Config(), overrides, "option"), "option")
    except ConfigError as exc:
        assert exc.message.startswith("--") or "unknown setting" in exc.message
