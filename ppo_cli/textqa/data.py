"""QA datasets: YAML loading with validation (every problem names the file, entry and line),
the tokenizer, and the vocabulary."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from ppo_cli.errors import DatasetError, RunError, short_repr
from ppo_cli.files import read_regular
from ppo_cli.yamlio import DuplicateKey, check_duplicate_keys, describe_yaml_error

PAD, START, END, UNK = "<PAD>", "<START>", "<END>", "<UNK>"
SPECIAL_TOKENS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3

DEFAULT_MAX_ANSWER_TOKENS = 4
MAX_DATASET_BYTES = 20_000_000

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PUNCT = re.compile(r"[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split words from punctuation: "What is 2+2?" -> What, is, 2, +, 2, ?."""
    return _TOKEN_RE.findall(text)


# Characters that print as nothing: format characters (zero-width space U+200B, joiners, BOM,
# bidi marks), controls, unassigned and private-use code points, and separators.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def is_visible(text: str) -> bool:
    """True when the text shows at least one character (not only zero-width ones)."""
    return any(
        not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text
    )


def detokenize(tokens: list[str]) -> str:
    """Join tokens back into text, without spaces before punctuation or around '+'-like signs."""
    out = tokens[0] if tokens else ""
    for prev, tok in pairwise(tokens):
        out += tok if _PUNCT.fullmatch(tok) or _PUNCT.fullmatch(prev) else " " + tok
    return out


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    level: int = 0

    @property
    def question_tokens(self) -> list[str]:
        return tokenize(self.question)

    @property
    def answer_tokens(self) -> list[str]:
        return tokenize(self.answer)


@dataclass
class QADataset:
    """Validated question-answer pairs plus the optional settings a YAML file may carry."""

    pairs: list[QAPair]
    name: str = "dataset"
    description: str = ""
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS
    rewards: dict[str, float] = field(default_factory=dict)
    source: str = "<builtin>"
    reward: str | None = None  # a name from ppo_cli.textqa.rewards (None: the default reward)

    def to_dict(self) -> dict[str, Any]:
        """Plain form, written to a run directory so `ask` and `eval` need nothing else."""
        doc: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "max_answer_tokens": self.max_answer_tokens,
            "pairs": [
                {"question": p.question, "answer": p.answer}
                | ({"level": p.level} if p.level else {})
                for p in self.pairs
            ],
        }
        if self.reward is not None:
            doc["reward"] = self.reward
        if self.rewards:
            doc["rewards"] = dict(self.rewards)
        return doc

    def fingerprint(self) -> str:
        """Stable hash of the pairs, so a checkpoint can tell which dataset it was trained on."""
        body = json.dumps([[p.question, p.answer] for p in self.pairs], ensure_ascii=False)
        return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]

    @property
    def levels(self) -> list[int]:
        return sorted({p.level for p in self.pairs})


class Vocabulary:
    """Token <-> id mapping; special tokens first, then tokens in order of first appearance."""

    def __init__(self, tokens: list[str]) -> None:
        self._stoi: dict[str, int] = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        for tok in tokens:
            self._stoi.setdefault(tok, len(self._stoi))
        self.itos: list[str] = list(self._stoi)
        # the first token of each lower-cased spelling
        self._lower = {t.lower(): i for t, i in reversed(self._stoi.items())}

    @classmethod
    def from_dataset(cls, dataset: QADataset) -> Vocabulary:
        return cls([t for p in dataset.pairs for t in (*p.question_tokens, *p.answer_tokens)])

    @classmethod
    def from_list(cls, itos: list[str]) -> Vocabulary:
        if list(itos[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
            raise ValueError("vocabulary does not start with the special tokens")
        return cls(list(itos[len(SPECIAL_TOKENS) :]))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> tuple[list[int], list[str]]:
        """Ids for tokens, and the unknown ones (<UNK>); an exact match wins, else a
        case-insensitive one, so "what is 2+2?" still works."""
        ids = [
            self._stoi[tok] if tok in self._stoi else self._lower.get(tok.lower(), UNK_ID)
            for tok in tokens
        ]
        return ids, [tok for tok in tokens if tok.lower() not in self._lower]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.itos[i] for i in ids]


def builtin_dataset_path() -> Path:
    return Path(str(resources.files("ppo_cli").joinpath("datasets/builtin.yaml")))


def load_dataset(
    path: str | Path | None = None, progress: Callable[[str], None] | None = None
) -> QADataset:
    """Read and validate a QA dataset; None means the built-in five questions. `progress`
    gets a line now and then while a big file is read."""
    if path is None:
        return parse_dataset(builtin_dataset_path().read_text(encoding="utf-8"), "<builtin>")
    p = Path(path)
    size = p.stat().st_size if p.is_file() else 0  # for the message about a too-large file
    raw = read_regular(
        p,
        "dataset file",
        MAX_DATASET_BYTES,
        error=DatasetError,
        missing_hint="check the path, or omit --dataset for the built-in set",
        size_message=f"{p}: the file is {_mb(size)}, more than the {_mb(MAX_DATASET_BYTES)} "
        "a dataset may hold (all of it is kept in memory while training)",
        size_hint="split the dataset, or keep the pairs that matter most",
    )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{p}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8 YAML"
        ) from exc
    del raw
    if progress is None or len(text) < PROGRESS_MIN_CHARS:
        return parse_dataset(text, str(p))
    shown = f"{p} ({_mb(len(text))})"
    progress(f"reading {shown} ...")
    done = [0.0]

    def report(fraction: float) -> None:  # 20%, 40%, ... 100%, once each
        if fraction >= done[0] + 0.2 or (fraction >= 1.0 > done[0]):
            done[0] = fraction
            progress(f"reading {shown}: {fraction:.0%}")

    return parse_dataset(text, str(p), report)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def read_run_dataset(path: Path, hint: str) -> QADataset:
    """A run directory's own dataset.yaml (a regular file, never a pipe)."""
    if not path.exists():
        raise RunError(f"{path}: missing or unreadable", hint)
    raw = read_regular(path, "dataset file", 4 * MAX_DATASET_BYTES, missing_hint=hint)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunError(f"{path}: missing or unreadable (not UTF-8)", hint) from exc
    return parse_dataset(text, str(path))


class _NotPlain(Exception):
    """The YAML uses something the streaming reader leaves to PyYAML's own composer (anchors,
    aliases, explicit tags, merge keys, complex keys, several documents)."""


# Report reading progress for texts above this size (characters); smaller ones load at once.
PROGRESS_MIN_CHARS = 2_000_000


def _stream_yaml(
    text: str, progress: Callable[[float], None] | None
) -> tuple[Any, list[int | None], list[dict[str, str]]]:
    """The document, read from libyaml's event stream without building a node tree: linear in
    the text and light on memory (PyYAML's composer keeps a node and two marks per value: ~100x
    the file for 300k pairs). Returns the data, the line of each entry of the top-level 'pairs'
    list, and, per entry, each scalar that YAML resolves to a non-string as written (so
    `answer: 010` stays "010"). Raises _NotPlain for what it leaves to PyYAML."""
    loader_cls = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    helper = yaml.SafeLoader("")  # its resolver and scalar constructors, nothing else
    loader = loader_cls(text)
    total = max(1, len(text))
    step = max(total // 20, 1)
    next_report = step
    lines: list[int | None] = []
    written: list[dict[str, str]] = []
    # frames: [container, pending key (mappings), is_mapping, role, each key's line]
    stack: list[list[Any]] = []
    root: Any = None
    documents = 0
    count = 0

    def add(value: Any, line: int, raw: str | None = None) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        frame = stack[-1]
        if not frame[2]:
            if frame[3] == 1:  # an entry of 'pairs' (a scalar one is refused later, by line)
                lines.append(line)
                written.append({})
            frame[0].append(value)
        elif frame[1] is _NO_KEY:  # a mapping: a key, then its value
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise _NotPlain
            first = frame[4].get(value)
            if first is not None:
                raise DuplicateKey(value, line, first)
            frame[4][value] = line
            frame[1] = value
        else:
            frame[0][frame[1]] = value
            if frame[3] == 2 and raw is not None and not isinstance(value, str):
                written[-1][str(frame[1])] = raw
            frame[1] = _NO_KEY

    try:
        while loader.check_event():
            event = loader.get_event()
            count += 1
            if progress is not None and count % 2048 == 0:
                index = event.end_mark.index if event.end_mark is not None else 0
                if index >= next_report:
                    progress(min(index / total, 1.0))
                    next_report = index + step
            if isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None or event.tag not in (None, "!"):
                    raise _NotPlain
                implicit = (False, False) if event.tag == "!" else event.implicit
                tag = helper.resolve(yaml.ScalarNode, event.value, implicit)
                if tag == "tag:yaml.org,2002:str":
                    value: Any = event.value
                elif tag not in helper.yaml_constructors or tag.endswith((":merge", ":value")):
                    raise _NotPlain  # PyYAML's composer and constructor name the problem
                else:
                    node = yaml.ScalarNode(
                        tag, event.value, event.start_mark, event.end_mark, event.style
                    )
                    value = helper.yaml_constructors[tag](helper, node)
                add(value, event.start_mark.line + 1, event.value)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if event.anchor is not None or event.tag not in (None, "!"):
                    raise _NotPlain
                if stack and stack[-1][2] and stack[-1][1] is _NO_KEY:
                    raise _NotPlain  # a mapping or list as a key
                # role 1: the top-level 'pairs' list; 2: an entry of it
                top_pairs = len(stack) == 1 and stack[0][2] and stack[0][1] == "pairs"
                role = 1 if top_pairs else 2 if stack and stack[-1][3] == 1 else 0
                is_map = isinstance(event, yaml.MappingStartEvent)
                container: Any = {} if is_map else []
                add(container, event.start_mark.line + 1)
                stack.append([container, _NO_KEY, is_map, role, {}])  # + each key's line
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop()
            elif isinstance(event, yaml.AliasEvent):
                raise _NotPlain
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _NotPlain  # PyYAML's composer names the problem
    finally:
        loader.dispose()
    if progress is not None:
        progress(1.0)
    return root, lines, written


_NO_KEY = object()


def _compose_yaml(text: str) -> tuple[Any, list[int | None], list[dict[str, str]]]:
    """_stream_yaml's result through PyYAML's composer (every YAML feature)."""
    loader = yaml.SafeLoader(text)  # one parse: the node tree gives line numbers, then data
    try:
        node = loader.get_single_node()
        if node is not None:
            check_duplicate_keys(node)
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: list[int | None] = []
    written: list[dict[str, str]] = []
    for key, value in node.value if isinstance(node, yaml.MappingNode) else ():
        if getattr(key, "value", None) == "pairs" and isinstance(value, yaml.SequenceNode):
            lines = [item.start_mark.line + 1 for item in value.value]
            written = [_scalars(item) for item in value.value]
    return data, lines, written


def _scalars(node: Any) -> dict[str, str]:
    """A mapping node's scalar values as written, by key."""
    items = node.value if isinstance(node, yaml.MappingNode) else ()
    scalar = yaml.ScalarNode
    return {k.value: v.value for k, v in items if isinstance(k, scalar) and isinstance(v, scalar)}


def _read_yaml(
    text: str, source: str, progress: Callable[[float], None] | None = None
) -> tuple[Any, list[int | None], list[dict[str, str]]]:
    try:
        try:
            return _stream_yaml(text, progress)
        except (_NotPlain, yaml.YAMLError):  # PyYAML's composer: every feature, its wording
            return _compose_yaml(text)
    except DuplicateKey as dup:
        raise DatasetError(
            f"{source}: line {dup.line}: key {short_repr(dup.key)} is given twice in one "
            f"mapping (first on line {dup.first}); YAML would keep only the last",
            "keep one of them (a second pair belongs in its own '- question: ...' entry)",
        ) from None
    except yaml.YAMLError as exc:
        raise DatasetError(
            f"{source}:{describe_yaml_error(exc)}",
            "check indentation and quoting; see examples/ for the format",
        ) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise DatasetError(
            f"{source}: not valid YAML ({short_repr(str(exc))})", "see examples/"
        ) from exc


def _text_value(value: Any, source: str, where: str, key: str, raw: str | None = None) -> str:
    """The text of one question/answer value. `raw` is the scalar as written in the file: a
    number is kept as typed (`answer: 010` stays "010", not YAML's octal 8; `1:30` is not 90)."""
    value = "" if value is None else value  # refused below as empty
    if isinstance(value, bool):
        raise DatasetError(
            f"{source}: {where}: '{key}' is the boolean {value} (YAML reads yes/no/true as such)",
            f'put the {key} in quotes, e.g. {key}: "yes"',
        )
    if isinstance(value, (int, float)):
        value = raw if raw is not None else str(value)
    if isinstance(value, (list, dict)):
        kind = "a list" if isinstance(value, list) else "a mapping"
        raise DatasetError(
            f"{source}: {where}: '{key}' is {kind}, not text", f"give one {key} as text"
        )
    if not isinstance(value, str):
        raise DatasetError(
            f"{source}: {where}: '{key}' has type {type(value).__name__}, not text",
            f"give the {key} as quoted text",
        )
    _refuse_surrogates(value, f"{source}: {where}: '{key}'")
    value = " ".join(value.split())
    if not value or not tokenize(value):
        raise DatasetError(f"{source}: {where}: '{key}' is empty", f"give the {key} as text")
    if not is_visible(value):
        codes = " ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(value))[:60]
        raise DatasetError(
            f"{source}: {where}: '{key}' holds only invisible characters ({codes})",
            f"give the {key} as visible text (a zero-width space is not an answer)",
        )
    return value


def _refuse_surrogates(text: str, what: str) -> None:
    """A lone UTF-16 surrogate ("\\ud800" in a quoted YAML string) is no character: it cannot
    be written to the run's files or printed, so it is refused where it was written."""
    bad = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise DatasetError(
            f"{what} holds a lone surrogate (U+{ord(bad):04X}), which is not a character",
            "write the character itself, or its escape as a pair (\\U0001F600 style)",
        )


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _optional_text(data: dict[Any, Any], key: str, source: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        _refuse_surrogates(str(value), f"{source}: '{key}'")
        return str(value)
    raise DatasetError(
        f"{source}: '{key}' must be text, got {type(value).__name__}", f"give the {key} as text"
    )


def parse_dataset(
    text: str, source: str = "<string>", progress: Callable[[float], None] | None = None
) -> QADataset:
    """Validate YAML text as a dataset; raise DatasetError naming file, entry and problem."""
    hint = "a dataset looks like:  pairs: [{question: ..., answer: ...}]  (see examples/)"
    data, found_lines, found_written = _read_yaml(text, source, progress)
    if data is None:
        raise DatasetError(f"{source}: file is empty", hint)
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: top level is not a mapping with 'pairs'", hint)
    if "pairs" not in data:
        raise DatasetError(f"{source}: no 'pairs' key", hint)
    raw_pairs = data["pairs"]
    if not isinstance(raw_pairs, list):
        raise DatasetError(f"{source}: 'pairs' is not a list", hint)
    if not raw_pairs:
        raise DatasetError(f"{source}: 'pairs' is empty", "add at least one question and answer")

    # Per entry: its line, and each scalar as written (for numbers kept as typed).
    n = len(raw_pairs)
    lines = (found_lines + [None] * n)[:n]
    written = (found_written + [{} for _ in range(n - len(found_written))])[:n]

    max_tokens = data.get("max_answer_tokens", DEFAULT_MAX_ANSWER_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 64:
        raise DatasetError(
            f"{source}: 'max_answer_tokens' must be a whole number from 1 to 64, "
            f"got {short_repr(max_tokens)}",
            "omit it for the default of 4",
        )
    rewards = data.get("rewards") or {}
    allowed = {"correct", "overlap", "partial", "wrong", "step_penalty"}
    if not isinstance(rewards, dict) or set(rewards) - allowed:
        raise DatasetError(
            f"{source}: 'rewards' must be a mapping with keys from {sorted(allowed)}",
            "e.g. rewards: {correct: 10, partial: 4, wrong: -2, step_penalty: 0.1}",
        )
    reward_name = data.get("reward")
    if reward_name is not None and (not isinstance(reward_name, str) or not reward_name):
        raise DatasetError(
            f"{source}: 'reward' must be a reward name, got {short_repr(reward_name)}",
            "e.g. reward: prefix  (ppoqa explain-reward lists them)",
        )
    for k, v in rewards.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) > 1e6:
            raise DatasetError(
                f"{source}: rewards.{k} must be a number, got {short_repr(v)}", "e.g. 10.0"
            )

    pairs: list[QAPair] = []
    seen: dict[str, tuple[str, str]] = {}
    for i, entry in enumerate(raw_pairs):
        where = f"pair {i}" + (f" (line {lines[i]})" if lines[i] else "")
        if not isinstance(entry, dict):
            raise DatasetError(
                f"{source}: {where}: not a mapping with 'question' and 'answer'", hint
            )
        for key in ("question", "answer"):
            if key not in entry:
                raise DatasetError(f"{source}: {where}: missing '{key}'", hint)
        question = _text_value(
            entry["question"], source, where, "question", written[i].get("question")
        )
        answer = _text_value(entry["answer"], source, where, "answer", written[i].get("answer"))
        level = entry.get("level", 0)
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise DatasetError(
                f"{source}: {where}: 'level' must be a whole number >= 0, got {short_repr(level)}",
                "levels order a curriculum: 0 is easiest",
            )
        n_tokens = len(tokenize(answer))
        if n_tokens > max_tokens:
            raise DatasetError(
                f"{source}: {where}: answer '{_clip(answer)}' has {n_tokens} tokens, more than the "
                f"limit of {max_tokens}",
                "shorten the answer or raise max_answer_tokens in the dataset file",
            )
        if question in seen:
            prev_answer, prev_where = seen[question]
            if prev_answer != answer:
                raise DatasetError(
                    f"{source}: {where}: question '{_clip(question)}' has two answers: "
                    f"'{_clip(prev_answer)}' ({prev_where}) and '{_clip(answer)}'",
                    "keep one answer per question",
                )
            continue  # an exact duplicate adds nothing
        seen[question] = (answer, where)
        pairs.append(QAPair(question, answer, level))

    name = _optional_text(data, "name", source)
    return QADataset(
        pairs=pairs,
        name=name if name is not None else Path(source).stem,
        description=_optional_text(data, "description", source) or "",
        max_answer_tokens=max_tokens,
        rewards={k: float(v) for k, v in rewards.items()},
        source=source,
        reward=reward_name,
    )
