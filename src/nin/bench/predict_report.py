"""The table ``nin bench --predict`` prints: one block per folder, one line per variant of the batch path."""

from __future__ import annotations

LABELS = {
    "processes": "worker processes decode between batches",
    "threads": "worker threads decode between batches",
    "main": "decode in the main thread, between batches",
    "overlap": "worker processes decode ahead, beside the model",
    "threads_overlap": "worker threads decode ahead, beside the model",
    "draft": "as processes, with JPEG draft (not exact)",
}


def _block(r: dict) -> list[str]:
    lines = [
        f"{r['folder']}: {r['model']}, {r['files']:,} files ({r['error_rows']} error rows), batch {r['batch_size']}",
        "",
        f"{'batch path (nin predict --out)':<52} {'workers':>7} {'img/s':>8} {'whole call':>10} {'bare fwd':>9} "
        f"{'/ bare':>7}",
        f"{'-' * 52} {'-' * 7} {'-' * 8} {'-' * 10} {'-' * 9} {'-' * 7}",
    ]
    for name, v in r["variants"].items():
        rounds = ", ".join(f"{100 * f:.0f}" for f in v["frac_of_bare_per_round"])
        lines.append(
            f"{LABELS.get(name, name):<52} {v['workers']:>7} {v['batch_img_s']:>8,.0f} {v['batch_wall_img_s']:>10,.0f} "
            f"{v['bare_forward_img_s']:>9,.0f} {100 * v['frac_of_bare']:>6.0f}%  (rounds: {rounds})"
        )
    lines.append(
        f"{'per-image Predictor.predict loop':<52} {'':>7} {r['per_image_loop_img_s']:>8,.0f}"
        + (f"  ({r['loop_files']:,} files)" if r["loop_files"] != r["files"] else "")
    )
    lines.append(
        f"batch path / bare forward: {100 * r['batch_frac_of_bare']:.0f}% ({r['default_variant']}); "
        f"batch path / per-image loop: {r['batch_vs_loop']:.2f}x (medians of the per-round ratios)"
    )
    d = r.get("draft_effect")
    if d and d.get("changed") is not None and "pixel_mean_abs" in d:
        lines.append(
            f"JPEG draft vs exact on {d['files']} files ({d['changed']} changed): pixels mean |d| "
            f"{d['pixel_mean_abs']:.2f}, max {d['pixel_max_abs']:.0f} (of 255); probabilities max |d| "
            f"{d['prob_max_abs']:.2e}; top-1 agrees {100 * d['top1_agree']:.0f}%"
        )
    return lines


def format_predict(r: dict) -> str:
    m, s = r["machine"], r["settings"]
    flags = " ".join(k for k, v in m.get("cpu_flags", {}).items() if v)
    lines = [
        f"nin bench --predict — {m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads; {flags}); "
        f"torch {m['torch']}; load average {r['load_avg_start']} -> {r['load_avg_end']}; {s['rounds']} rounds, medians",
        "",
        *_block(r),
    ]
    if "photos" in r:
        lines += ["", *_block(r["photos"])]
    ratios = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["ratios"].items())
    lines += ["", f"batch path / bare forward: {ratios}"]
    return "\n".join(lines)
