"""Datasets, tokenizer and vocabulary: what a user writing a YAML file relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ppo_cli.errors import DatasetError
from ppo_cli.textqa.data import (
    END_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    START_ID,
    UNK_ID,
    QADataset,
    QAPair,
    Vocabulary,
    builtin_dataset_path,
    detokenize,
    load_dataset,
    parse_dataset,
    tokenize,
)

from .conftest import EXAMPLES

SEED_PAIRS = {
    "What is the capital of France?": "Paris",
    "What is 2+2?": "4",
    "What color is the sky?": "blue",
    "Who wrote Romeo and Juliet?": "Shakespeare",
    "What is the largest planet?": "Jupiter",
}


# --- tokenizer ---------------------------------------------------------------------------


def test_tokenizer_splits_words_and_punctuation() -> None:
    assert tokenize("What is 2+2?") == ["What", "is", "2", "+", "2", "?"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Who wrote Romeo and Juliet?", ["Who", "wrote", "Romeo", "and", "Juliet", "?"]),
        ("  Buenos   Aires ", ["Buenos", "Aires"]),
        ("12*3=36.", ["12", "*", "3", "=", "36", "."]),
        ("", []),
    ],
)
def test_tokenizer_examples(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize("text", ["What is 2+2?", "Buenos Aires", "Who wrote Romeo and Juliet?"])
def test_detokenize_restores_the_text(text: str) -> None:
    assert detokenize(tokenize(text)) == text


# --- vocabulary ---------------------------------------------------------------------------


def test_vocabulary_special_tokens_come_first() -> None:
    vocab = Vocabulary(["Paris", "blue"])
    assert vocab.itos[:4] == list(SPECIAL_TOKENS) == ["<PAD>", "<START>", "<END>", "<UNK>"]
    assert (PAD_ID, START_ID, END_ID, UNK_ID) == (0, 1, 2, 3)
    assert vocab.encode(["Paris", "blue"])[0] == [4, 5]
    assert len(vocab) == 6


def test_vocabulary_from_dataset_in_order_of_first_appearance() -> None:
    data = QADataset([QAPair("What is 2+2?", "4"), QAPair("What color is the sky?", "blue")])
    vocab = Vocabulary.from_dataset(data)
    assert vocab.itos[4:] == ["What", "is", "2", "+", "?", "4", "color", "the", "sky", "blue"]


def test_vocabulary_unknown_words_become_unk_and_are_reported() -> None:
    vocab = Vocabulary(["What", "is", "2", "+", "?"])
    ids, unknown = vocab.encode(["What", "is", "7", "+", "2", "?", "zebra"])
    assert ids[2] == UNK_ID and ids[6] == UNK_ID
    assert unknown == ["7", "zebra"]
    assert UNK_ID not in ids[:2] + ids[3:6]


def test_vocabulary_falls_back_to_case_insensitive_match() -> None:
    vocab = Vocabulary(["What", "is"])
    assert vocab.encode(["what", "IS"]) == (vocab.encode(["What", "is"])[0], [])


def test_vocabulary_round_trips_through_its_list() -> None:
    vocab = Vocabulary.from_dataset(load_dataset(None))
    again = Vocabulary.from_list(list(vocab.itos))
    assert again.itos == vocab.itos
    assert again.decode(again.encode(["Paris", "?"])[0]) == ["Paris", "?"]
    with pytest.raises(ValueError):
        Vocabulary.from_list(["Paris", "<PAD>"])


# --- the built-in and example datasets ----------------------------------------------------


def test_builtin_dataset_is_the_seed_five() -> None:
    data = load_dataset(None)
    assert {p.question: p.answer for p in data.pairs} == SEED_PAIRS
    assert data.max_answer_tokens == 4
    assert builtin_dataset_path().is_file()


def test_examples_are_valid_datasets() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        assert load_dataset(path).pairs, path


# --- accepted values ----------------------------------------------------------------------


def test_numbers_are_read_as_the_text_written(write_dataset) -> None:
    path = write_dataset(
        "pairs:\n"
        "  - question: What is 2+2?\n    answer: 4\n"
        "  - question: Half of one?\n    answer: 0.50\n"
        "  - question: Agent?\n    answer: 007\n"
        "  - question: 12\n    answer: twelve\n"
    )
    answers = [(p.question, p.answer) for p in load_dataset(path).pairs]
    assert answers == [
        ("What is 2+2?", "4"),
        ("Half of one?", "0.50"),
        ("Agent?", "007"),  # not YAML 1.1's octal 7
        ("12", "twelve"),
    ]


def test_optional_keys_are_read(write_dataset) -> None:
    path = write_dataset(
        "name: tiny\ndescription: two sums\nmax_answer_tokens: 2\n"
        "rewards: {correct: 5, step_penalty: 0}\n"
        "pairs:\n  - {question: 'What is 1+1?', answer: 2, level: 1}\n"
        "  - {question: 'What is 1+2?', answer: 3}\n"
        "  - {question: 'What is 1+2?', answer: 3}\n"  # an exact duplicate is dropped
    )
    data = load_dataset(path)
    assert (data.name, data.description, data.max_answer_tokens) == ("tiny", "two sums", 2)
    assert data.rewards == {"correct": 5.0, "step_penalty": 0.0}
    assert [(p.answer, p.level) for p in data.pairs] == [("2", 1), ("3", 0)]
    assert data.levels == [0, 1]


def test_whitespace_inside_values_is_collapsed(write_dataset) -> None:
    path = write_dataset("pairs:\n  - question: '  What   is 2+2? '\n    answer: ' 4 '\n")
    assert load_dataset(path).pairs == [QAPair("What is 2+2?", "4")]


def test_a_run_directory_copy_parses_back_to_the_same_dataset(write_dataset) -> None:
    import yaml

    data = load_dataset(EXAMPLES / "capitals.yaml")
    again = parse_dataset(yaml.safe_dump(data.to_dict()), "copy.yaml")
    assert again.pairs == data.pairs
    assert again.fingerprint() == data.fingerprint()


# --- every validation message: file, entry (index and line), problem ----------------------

GOOD = "  - question: What is 2+2?\n    answer: 4\n"

# (YAML text, pieces the message must contain after the file name)
BAD_DATASETS = {
    "not YAML": (
        "pairs:\n  - question: What is 2+2?\n    answer: [4\n",
        ["not valid YAML", "line "],
    ),
    "empty file": ("", ["file is empty"]),
    "top level a list": ("- question: a\n  answer: b\n", ["top level is not a mapping"]),
    "no pairs": ("name: sums\nquestions: []\n", ["no 'pairs' key"]),
    "pairs not a list": ("pairs: {question: a, answer: b}\n", ["'pairs' is not a list"]),
    "empty pairs": ("pairs: []\n", ["'pairs' is empty"]),
    "pair not a mapping": (f"pairs:\n{GOOD}  - just text\n", ["pair 1 (line 4)", "not a mapping"]),
    "missing question": (
        f"pairs:\n{GOOD}  - answer: Paris\n",
        ["pair 1 (line 4)", "missing 'question'"],
    ),
    "missing answer": (
        f"pairs:\n{GOOD}{GOOD.replace('2+2', '3+3')}  - question: What is 1+1?\n",
        ["pair 2 (line 6)", "missing 'answer'"],
    ),
    "answer is a list": (
        "pairs:\n  - question: What is 2+2?\n    answer: [4, four]\n",
        ["pair 0 (line 2)", "'answer' is a list"],
    ),
    "answer is a mapping": (
        "pairs:\n  - question: What is 2+2?\n    answer: {value: 4}\n",
        ["pair 0 (line 2)", "'answer' is a mapping"],
    ),
    "question is a list": (
        "pairs:\n  - question:\n      - What\n      - is\n    answer: x\n",
        ["pair 0 (line 2)", "'question' is a list"],
    ),
    "answer is empty": (
        f"pairs:\n{GOOD}  - question: Who?\n    answer:\n",
        ["pair 1 (line 4)", "'answer' is empty"],
    ),
    "answer is an empty string": (
        "pairs:\n  - question: Who?\n    answer: '   '\n",
        ["pair 0 (line 2)", "'answer' is empty"],
    ),
    "question is empty": (
        "pairs:\n  - question: ''\n    answer: x\n",
        ["pair 0 (line 2)", "'question' is empty"],
    ),
    "answer is a YAML boolean": (
        "pairs:\n  - question: Is the sky blue?\n    answer: yes\n",
        ["pair 0 (line 2)", "'answer' is the boolean True"],
    ),
    "question is a YAML boolean": (
        "pairs:\n  - question: off\n    answer: x\n",
        ["pair 0 (line 2)", "'question' is the boolean False"],
    ),
    "two answers for one question": (
        f"pairs:\n{GOOD}  - question: What is 2+2?\n    answer: five\n",
        ["pair 1 (line 4)", "two answers", "'4' (pair 0 (line 2))", "'five'"],
    ),
    "answer longer than the default limit": (
        "pairs:\n  - question: Count?\n    answer: one two three four five\n",
        ["pair 0 (line 2)", "5 tokens", "limit of 4"],
    ),
    "answer longer than the file's own limit": (
        f"max_answer_tokens: 1\npairs:\n{GOOD}  - question: Where?\n    answer: Buenos Aires\n",
        ["pair 1 (line 5)", "2 tokens", "limit of 1"],
    ),
    "bad max_answer_tokens": (
        f"max_answer_tokens: 0\npairs:\n{GOOD}",
        ["'max_answer_tokens' must be a whole number from 1 to 64"],
    ),
    "bad rewards key": (f"rewards: {{bonus: 1}}\npairs:\n{GOOD}", ["'rewards' must be a mapping"]),
    "bad rewards value": (f"rewards: {{correct: high}}\npairs:\n{GOOD}", ["rewards.correct"]),
    "bad level": (f"pairs:\n{GOOD}    level: -1\n", ["pair 0 (line 2)", "'level'"]),
    "a date is not text": (
        "pairs:\n  - question: When?\n    answer: 2024-01-01\n",
        ["pair 0 (line 2)", "'answer' has type date"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATASETS))
def test_dataset_problem_names_file_entry_and_problem(case: str, write_dataset) -> None:
    text, pieces = BAD_DATASETS[case]
    path = write_dataset(text, "my-data.yaml")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    for piece in pieces:
        assert piece in message, f"{piece!r} not in {message!r}"
    assert "\n" not in message
    assert info.value.hint  # every problem says how to fix it


def test_not_yaml_message_points_at_the_line(write_dataset) -> None:
    path = write_dataset("pairs:\n  - question: a\n    answer: b\n  - question: [c\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: line ")):
        load_dataset(path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "missing.yaml", "dataset file not found"),
        (lambda tmp: tmp, "is a directory"),
    ],
)
def test_unusable_paths_are_reported(tmp_path: Path, make, expected: str) -> None:
    path = make(tmp_path)
    with pytest.raises(DatasetError, match=re.escape(f"{path}: {expected}")):
        load_dataset(path)


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("pairs:\n  - question: Café?\n    answer: oui\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(path)
