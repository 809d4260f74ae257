"""YAML reading shared by datasets and config files: one-line error messages, and a refusal of
a key written twice (YAML would silently keep only the last value)."""

from __future__ import annotations

from typing import Any

import yaml


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """' line N: not valid YAML (problem)', for one-line messages about any YAML file."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid syntax"
    return f"{where}: not valid YAML ({problem})"


class DuplicateKey(Exception):
    """A key written twice in one mapping: YAML would keep only the last value."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


def load_yaml_unique(text: str) -> Any:
    """yaml.safe_load, except that a key given twice in one mapping raises DuplicateKey."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_duplicate_keys(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_duplicate_keys(node: Any) -> None:
    """DuplicateKey for the first mapping in the node graph that repeats a key. Each node is
    visited once: aliases make a graph (an alias bomb, or a list that holds itself)."""
    todo = [node]
    seen_nodes: set[int] = set()
    while todo:
        n = todo.pop()
        if id(n) in seen_nodes:
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            keys: dict[tuple[str, str], int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    line = k.start_mark.line + 1
                    if (k.tag, k.value) in keys:
                        raise DuplicateKey(k.value, line, keys[k.tag, k.value])
                    keys[k.tag, k.value] = line
                todo.append(v)
        elif isinstance(n, yaml.SequenceNode):
            todo.extend(n.value)
