"""docs/architecture.md's table "How Heron recovers from each fault" stays one table, each fault
once, and every test it names as proof exists (a renamed test would leave the claim unproved)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def recovery_table() -> list[list[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## How Heron recovers from each fault", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| fault |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    # Nothing table-like after the first break: a blank line inside the table cuts it in two.
    rest = lines[start + 2 + len(rows) :]
    assert not any(line.startswith("|") for line in rest), "the recovery table is cut by a blank line"
    return rows


def test_the_recovery_table_is_whole_and_each_fault_is_listed_once() -> None:
    rows = recovery_table()
    assert all(len(row) == 3 for row in rows), [row[0] for row in rows if len(row) != 3]
    faults = [row[0] for row in rows]
    assert len(faults) == len(set(faults)), faults
    for wanted in ("broker restart", "Postgres restart", "Redis", "SIGKILL", "poison", "longer than"):
        assert any(wanted in fault for fault in faults), wanted


def test_every_test_named_as_proof_exists() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    modules = {p.stem for p in (ROOT / "tests").rglob("test_*.py")}
    for _, _, proof in recovery_table():
        for name in re.findall(r"`(test_\w+)", proof):
            assert name in modules or f"def {name}(" in sources, f"{name} is named as proof but does not exist"
