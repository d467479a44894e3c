import json
import subprocess
import sys

import pytest

from nin.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip()


def test_list_json(capsys):
    assert main(["list", "models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert models["nin_cifar10"]["params"] == 966_986


def test_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", "smoke", "--out", str(out), "--set", "max_steps=3", "--no-progress"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["eval", str(out / "last.pt"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"accuracy", "error_pct", "loss", "n"} <= set(m)
    assert 0 <= m["accuracy"] <= 1 and m["n"] == 256
    assert (
        main(
            [
                "train",
                "--config",
                "smoke",
                "--out",
                str(out),
                "--resume",
                "--set",
                "max_steps=6",
                "--no-progress",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["steps"] == 6


def test_eval_with_test_time_flips(tmp_path, capsys):
    import torch.nn.functional as F

    from nin.data.registry import load_dataset
    from nin.export import load_for_eval
    from nin.train.evaluate import predict_logits
    from nin.train.runtime import inference_runtime

    digits, clothes = tmp_path / "digits", tmp_path / "mirrored"
    for out, flip in ((digits, "false"), (clothes, "true")):
        argv = ["train", "--config", "smoke", "--out", str(out), "--set", "max_steps=3", f"flip={flip}"]
        assert main([*argv, "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["eval", str(digits / "last.pt"), "--flip"]) == 2
    assert "trained without mirrored images" in capsys.readouterr().err
    assert main(["eval", str(clothes / "last.pt"), "--flip", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    rt = inference_runtime("cpu")  # what `nin eval` runs by default: fp32 on every machine
    _, model, pre = load_for_eval(clothes / "last.pt", rt)
    test = load_dataset("synthetic_mnist", "test")
    plain = predict_logits(model, test.images, pre, rt)
    mean = (plain + predict_logits(model, test.images.flip(3), pre, rt)) / 2
    assert m["flips"] is True
    assert m["accuracy"] == pytest.approx((mean.argmax(1) == test.labels).float().mean().item())
    # the loss tells the two apart even where a barely trained model's accuracy does not
    assert m["loss"] == pytest.approx(F.cross_entropy(mean, test.labels).item(), rel=1e-5)
    assert m["loss"] != pytest.approx(F.cross_entropy(plain, test.labels).item(), rel=1e-5)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--config", "nope"], "unknown config 'nope'; valid names:"),
        (["train", "--set", "epoch=1"], "unknown config key 'epoch'; valid keys:"),
        (["train", "--set", "lr=fast"], "expected float"),
        (["train", "--resume"], "--resume needs --out"),
        (["eval", "missing.pt"], "does not exist"),
    ],
)
def test_bad_input_gets_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_eval_on_a_foreign_file(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["eval", str(bad)]) == 2
    assert "truncated or not a PyTorch file" in capsys.readouterr().err


def test_show_config(capsys):
    assert main(["train", "--show-config", "--set", "epochs=7"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 7


def test_parser_builds():
    assert build_parser().prog == "nin"


def test_a_command_imports_no_other_command_module():
    code = (
        "import sys; from nin.cli import COMMANDS, main; assert main(['list', 'preprocess', '--json']) == 0; "
        "others = [m for m, _ in COMMANDS.values() if m in sys.modules and m != 'nin.cli.list_cmd']; "
        "assert not others, others"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["-v", "no-such-command"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
