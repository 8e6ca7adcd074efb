"""make mutate's reader of mutmut's results (tools/mutation.py) and the docs' table it writes."""

import json
import tomllib

from tools import mutation

#: The core modules of issue 20: make mutate must cover each.
CORE = {
    "launchprov/auth.py",
    "launchprov/params.py",
    "launchprov/policy.py",
    "launchprov/ownership.py",
    "launchprov/leases.py",
    "launchprov/launching.py",
    "launchprov/capacity.py",
    "launchprov/bulkhead.py",
    "launchprov/ratelimit.py",
    "launchprov/errors.py",
    "launchprov/providers/batching.py",
    "launchprov/providers/ec2.py",
    "launchprov/providers/ec2_common.py",
    "launchprov/providers/paging.py",
    "launchprov/providers/libcloud/provider.py",
    "launchprov/client.py",
    "launchprov/scripts/reap.py",
}


def test_every_core_module_is_mutated():
    assert set(mutation.core_modules()) >= CORE


def test_a_mutant_belongs_to_its_module_by_its_name():
    assert mutation.mutant_prefix("launchprov/providers/ec2.py") == "launchprov.providers.ec2."
    assert mutation.mutant_prefix("launchprov/scripts/__init__.py") == "launchprov.scripts."


def test_the_docs_table_is_the_one_written_from_the_committed_results():
    data = json.loads(mutation.DATA.read_text())
    assert set(data) <= set(mutation.core_modules())
    assert mutation.TABLE.read_text() == mutation.table(data)


def test_every_equivalent_mutant_says_its_line_and_why():
    with mutation.EQUIVALENTS.open("rb") as file:
        listed = tomllib.load(file)["mutant"]
    for name, entry in listed.items():
        assert set(entry) == {"line", "reason"}, name
        assert entry["line"].strip() and entry["reason"].strip(), name
        assert any(name.startswith(mutation.mutant_prefix(m)) for m in mutation.core_modules())


def test_a_listed_equivalent_counts_only_while_its_line_is_the_mutants(tmp_path, monkeypatch):
    """An equivalent whose diff line no longer matches (the code changed) is a survivor again."""
    module = "launchprov/auth.py"
    meta = tmp_path / "mutants" / (module + ".meta")
    meta.parent.mkdir(parents=True)
    names = ["launchprov.auth.x_digest__mutmut_1", "launchprov.auth.x_digest__mutmut_2"]
    meta.write_text(json.dumps({"exit_code_by_key": {names[0]: 0, names[1]: 0}}))
    equivalents = tmp_path / "equivalents.toml"
    equivalents.write_text(
        f'[mutant."{names[0]}"]\nline = "return 1"\nreason = "r"\n'
        f'[mutant."{names[1]}"]\nline = "return 2"\nreason = "r"\n'
    )
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "EQUIVALENTS", equivalents)
    diffs = {names[0]: "--- a\n+++ b\n-    return 0\n+    return 1", names[1]: "+    return 3"}
    monkeypatch.setattr(mutation, "mutant_diff", lambda name, module: diffs[name])

    (row,), survivors = mutation.read_results([module])

    assert (row.mutants, row.equivalent, row.survived) == (2, 1, 1)
    assert [name for name, diff in survivors[module]] == [names[1]]
    assert row.score == 0.0


def test_a_reason_is_shown_as_its_own_text_in_the_docs():
    # A star in a reason (RateLimit-*) once opened an emphasis that never ended: make docs,
    # which turns warnings into errors, failed on the generated table.
    assert mutation.rst_text("its figures (RateLimit-*), never") == (
        "its figures (RateLimit-\\*), never"
    )
    assert mutation.rst_text("a \\ b") == "a \\\\ b"
