"""The human-readable table of ``nin bench`` (the JSON object holds the same figures and the raw samples)."""

from __future__ import annotations


def _f(v: float | None, spec: str = ".1f", none: str = "n/a") -> str:
    return none if v is None else format(v, spec)


def format_table(r: dict) -> str:
    m = r["machine"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} threads)"
    flags = ", ".join(k for k, v in m.get("cpu_flags", {}).items() if v) or "none of the listed"
    prec = r["peak_precision"]
    lines = [
        f"nin bench — {r['settings']['model']}, batch {r['settings']['batch_size']}, 32x32 — {where}",
        f"runtime: {m['runtime']}; torch {m['torch']}; load average {r['load_avg_start']} -> {r['load_avg_end']}",
        f"CPU flags: {flags}; native bf16: {'yes' if m['cpu_native_bf16'] else 'no'}",
        "",
        f"{'measure':<44} {'value':>12}  note",
        f"{'-' * 44} {'-' * 12}  {'-' * 30}",
        f"{'fp32 GEMM peak (GFLOP/s)':<44} {_f(r['fp32_gemm_gflops']):>12}  median, interleaved",
        f"{'bf16 GEMM peak (GFLOP/s)':<44} {_f(r['bf16_gemm_gflops']):>12}"
        + (
            ("  emulated (no native bf16);" if m["device"] == "cpu" and not m["cpu_native_bf16"] else "  unused;")
            + f" ours trains at {100 * r['train_frac_of_bf16_peak']:.0f}%, evaluates at "
            f"{100 * r['eval_frac_of_bf16_peak']:.0f}% of it"
            if prec != "bf16"
            else ""
        ),
        f"{'train, ours (img/s)':<44} {_f(r['train_img_s']):>12}  {_f(r['train_gflops'])} GFLOP/s",
        f"{'train, textbook baseline (img/s)':<44} {_f(r['textbook_img_s']):>12}  {_f(r['textbook_gflops'])} GFLOP/s",
        f"{'train speed-up, ours / textbook':<44} {_f(r['speedup_vs_textbook'], '.2f') + 'x':>12}",
        f"{'train, % of ' + prec + ' GEMM peak':<44} {_f(100 * r['train_peak_frac']) + '%':>12}  "
        "peak of the precision used",
        f"{'step time outside the model':<44} {_f(100 * r['outside_model_frac']) + '%':>12}  "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in r["phase_ms"].items()),
        f"{'eval, pipeline (img/s)':<44} {_f(r['eval_img_s']):>12}  {_f(r['eval_gflops'])} GFLOP/s",
        f"{'eval, % of ' + prec + ' GEMM peak':<44} {_f(100 * r['eval_peak_frac']) + '%':>12}",
        f"{'eval, bare model forward (img/s)':<44} {_f(r['bare_eval_img_s']):>12}  "
        f"{_f(100 * r['bare_eval_peak_frac'])}% of peak; pipeline runs at "
        f"{_f(100 * r['pipeline_vs_bare'])}% of it",
        f"{'eval, unfused eager module (img/s)':<44} {_f(r['eager_model_eval_img_s']):>12}  "
        "conv, BN and ReLU as separate passes, autocast per call",
        f"{'latency, 1 image, eager p50 / p99 (ms)':<44} "
        f"{_f(r['latency_ms_p50'], '.2f') + ' / ' + _f(r['latency_ms_p99'], '.2f'):>12}",
    ]
    if r.get("onnx_eval_img_s") is not None:
        lines += [
            f"{'eval, ONNX Runtime CPU (img/s)':<44} {_f(r['onnx_eval_img_s']):>12}",
            f"{'latency, ONNX Runtime CPU p50 / p99 (ms)':<44} "
            f"{_f(r['onnx_latency_ms_p50'], '.2f') + ' / ' + _f(r['onnx_latency_ms_p99'], '.2f'):>12}",
        ]
    else:
        lines.append(f"{'ONNX Runtime':<44} {'n/a':>12}  {r.get('onnx_error') or 'disabled'}")
    run = r.get("train_run")
    if run:
        lines += [
            "",
            f"short training run ({run['dataset']}, {run['runtime']}): {run['epochs']} epochs, "
            f"test accuracy {100 * (run['test_accuracy'] or 0):.2f}%, img/s per epoch {run['img_s_per_epoch']}, "
            f"wall {run['wall_time_s']} s",
        ]
    lines += ["", f"{r['flop_convention']}; {r['macs_per_image'] / 1e6:.1f} M MACs per image forward."]
    lines.append(f"bench time {r['bench_time_s']} s")
    return "\n".join(lines)
