"""Every board command fails the same way on the same situations: one line on stderr, exit 2,
never a traceback -- through main() in CliRunner and through the installed console script."""
import json
import os
import subprocess
import sys

import pytest
import serial

from fakeboard import FakeBoard, invoke
from powersentinel import captures, deploy, link, logs, siteconfig, virtual
from powersentinel.bench import rig, scenario
from powersentinel.errors import PowerSentinelError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(os.path.dirname(sys.executable), "powersentinel")
EXAMPLE = os.path.join(REPO, "docs", "site.example.toml")

COMMANDS = [
    ["config", "push", EXAMPLE],
    ["config", "pull"],
    ["logs"],
    ["captures", "list"],
    ["captures", "pull"],
    ["monitor"],
    ["status"],
]


def args_for(cmd, port, tmp_path):
    a = cmd + ["--port", port]
    if cmd[0] == "logs":
        a += ["--db", str(tmp_path / "l.sqlite")]
    if cmd[:2] == ["captures", "pull"]:
        a += ["--out", str(tmp_path / "caps")]
    return a


def one_line_error(code, err, starts):
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: " + starts), err


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]).replace(EXAMPLE, "FILE"))
def test_missing_port(cmd, tmp_path):
    code, _, err = invoke(args_for(cmd, "/dev/ttyNOPE9", tmp_path))
    one_line_error(code, err, "no such port: /dev/ttyNOPE9")


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]).replace(EXAMPLE, "FILE"))
def test_busy_port(cmd, tmp_path):
    with FakeBoard() as fb:
        holder = serial.Serial(fb.port, 115200, exclusive=True)
        try:
            code, _, err = invoke(args_for(cmd, fb.port, tmp_path))
        finally:
            holder.close()
    one_line_error(code, err, "port %s is busy (another program has it open)" % fb.port)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]).replace(EXAMPLE, "FILE"))
def test_board_not_answering(cmd, tmp_path):
    with FakeBoard() as fb:
        fb.silent = True
        code, _, err = invoke(args_for(cmd, fb.port, tmp_path), env={"POWERSENTINEL_TIMEOUT": "0.4"})
    one_line_error(code, err, "the board on %s does not answer" % fb.port)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]).replace(EXAMPLE, "FILE"))
def test_other_protocol(cmd, tmp_path):
    with FakeBoard(protocol=99) as fb:
        code, _, err = invoke(args_for(cmd, fb.port, tmp_path))
    one_line_error(code, err, "firmware 0.1.0 speaks console protocol 99")


@pytest.mark.parametrize("cmd", COMMANDS[:5], ids=lambda c: " ".join(c[:2]).replace(EXAMPLE, "FILE"))
def test_firmware_without_the_op(cmd, tmp_path):
    # a firmware of the same protocol that lacks the op (an older build): say which op
    with FakeBoard(ops={"identify", "status", "ping"}) as fb:
        code, _, err = invoke(args_for(cmd, fb.port, tmp_path))
    one_line_error(code, err, "the board refused ")
    assert "unknown op" in err


def test_console_script_errors_are_one_line(tmp_path):
    env = dict(os.environ, POWERSENTINEL_TIMEOUT="1")
    r = subprocess.run([BIN, "logs", "--port", "/dev/ttyNOPE9", "--db", str(tmp_path / "x")],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2 and r.stderr == "error: no such port: /dev/ttyNOPE9\n"
    with FakeBoard() as fb:
        holder = serial.Serial(fb.port, 115200, exclusive=True)
        try:
            r = subprocess.run([BIN, "captures", "list", "--port", fb.port], capture_output=True,
                               text=True, env=env, timeout=30)
        finally:
            holder.close()
        assert r.returncode == 2 and r.stderr == \
            "error: port %s is busy (another program has it open)\n" % fb.port
        fb.silent = True
        r = subprocess.run([BIN, "config", "pull", "--port", fb.port], capture_output=True,
                           text=True, env=env, timeout=30)
        assert r.returncode == 2 and r.stderr.startswith("error: the board on %s does not answer" % fb.port)
        assert r.stderr.count("\n") == 1
    r = subprocess.run([BIN, "config", "validate", str(tmp_path / "none.toml")], capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 2 and r.stderr == "error: %s: no such file\n" % (tmp_path / "none.toml")
    r = subprocess.run([BIN, "monitor"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2 and "Missing option '--port'" in r.stderr and "Traceback" not in r.stderr


def test_every_command_has_help():
    for cmd in (["config"], ["config", "validate"], ["config", "push"], ["config", "pull"], ["logs"],
                ["captures"], ["captures", "list"], ["captures", "pull"], ["monitor"]):
        r = subprocess.run([BIN] + cmd + ["--help"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.startswith("Usage: powersentinel " + " ".join(cmd))
        body = r.stdout.split("\n\n", 2)[1]
        assert len(body.split()) >= 5, (cmd, body)  # says what it does, not just its name


def fake_virtual_dir(tmp_path, port):
    """A directory that looks like a running virtual board whose console is `port`."""
    d = tmp_path / "vb"
    d.mkdir()
    (d / "board.json").write_text(json.dumps({"serial": port}))
    return str(d)


@pytest.mark.parametrize("form", ["virtual://", "virtual:"])
def test_virtual_url_reaches_the_board_through_pyserial(form, tmp_path):
    with FakeBoard() as fb:
        d = fake_virtual_dir(tmp_path, fb.port)
        code, out, err = invoke(["status", "--json", "--port", form + d])
    assert code == 0, err
    assert json.loads(out)["identify"]["protocol"] is not None


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]).replace(EXAMPLE, "FILE"))
def test_virtual_url_without_a_board(cmd, tmp_path):
    d = str(tmp_path / "none")
    code, _, err = invoke(args_for(cmd, "virtual://" + d, tmp_path))
    one_line_error(code, err, "cannot open virtual://%s: no virtual board is running in %s"
                   % (d, d))


def test_deploy_on_a_virtual_url_without_a_board(tmp_path):
    d = str(tmp_path / "none")
    code, _, err = invoke(["deploy", "--port", "virtual:" + d])
    one_line_error(code, err, "cannot open virtual:%s: no virtual board is running in %s" % (d, d))


def test_unknown_url_scheme_is_one_line():
    code, _, err = invoke(["status", "--port", "nosuch://x"])
    one_line_error(code, err, "cannot open nosuch://x: invalid URL, protocol 'nosuch' not known")


def test_the_link_and_deploy_never_import_the_virtual_board():
    # the port handler reaches the board; opening a port needs none of the board's controls
    code = ("import sys; import powersentinel.link, powersentinel.deploy; "
            "print('powersentinel.virtual' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stdout + r.stderr


def test_a_broken_analysis_build_keeps_the_analyze_command_and_says_how_to_fix_it():
    # as when the package or its compiled kernels fail to import: every other command works,
    # and `analyze` is still listed and explains itself in one line
    code = ("import sys\n"
            "class Broken:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'powersentinel.analysis.cli':\n"
            "            raise ImportError('_kernels.so: undefined symbol: ps_sumsq')\n"
            "sys.meta_path.insert(0, Broken())\n"
            "from powersentinel.cli import main\n"
            "main(sys.argv[1:])\n")
    run = lambda *a: subprocess.run([sys.executable, "-c", code] + list(a), capture_output=True,  # noqa: E731
                                    text=True, timeout=60)
    r = run("--help")
    assert r.returncode == 0 and "analyze" in r.stdout and "UNAVAILABLE" in r.stdout, r.stdout
    r = run("analyze", "x.wav", "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: `powersentinel analyze` cannot run: the analysis package "
                               "does not load (ImportError: _kernels.so: undefined symbol: ps_sumsq). Rebuild")
    assert "make setup" in r.stderr
    r = run("config", "validate", EXAMPLE)
    assert r.returncode == 0, r.stderr


def test_every_expected_error_is_a_powersentinel_error():
    for cls in (captures.CaptureError, deploy.DeployError, link.LinkError, link.LinkLost,
                logs.LogStoreError, siteconfig.SiteConfigError, siteconfig.ConfigPushError,
                virtual.VirtualError, rig.RigError, scenario.ScenarioError):
        assert issubclass(cls, PowerSentinelError), cls
