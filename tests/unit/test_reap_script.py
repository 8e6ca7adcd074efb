"""launchprov-reap's own refusals, before any cloud is asked."""

from __future__ import annotations

from launchprov.scripts import reap


def test_the_reaper_refuses_the_in_process_sandbox_naming_the_setting(tmp_path, capsys):
    ini = tmp_path / "sandbox.ini"
    ini.write_text(
        "[app:main]\nuse = egg:launchprov\nlaunchprov.ec2.sandbox = true\n"
        "launchprov.tag_signing_key = a-key-of-sixteen-or-more\n"
    )
    assert reap.main([str(ini), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no summary: it reaped nothing, not "0 expired"
    (line,) = captured.err.strip().splitlines()
    assert "launchprov.ec2.sandbox = true" in line and "empty cloud" in line, line
