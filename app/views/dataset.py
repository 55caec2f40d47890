"""Dataset: where the chosen checkpoints disagree over a whole split; any clip one click from Query point."""
import sys

import streamlit as st

from app import dataset_engine, ui
from app.settings import load_settings
from gta_core.comparison import CompareRequest
from gta_core.disagreement import only_right
from gta_core.figures import class_matrices_figure, confusion_figure, matrix_figure, per_class_figure
from gta_core.views import pathway

AUTO_RUN_CLIPS = 200        # larger splits wait for a button (3 demo checkpoints: ~10 clips/s on 2 CPU cores)
FILTERS = ("only B right", "only A right", "both wrong", "all clips")

st.subheader("Dataset")
st.caption(
    "The checkpoints chosen in the sidebar on every clip of a dataset split (as `python -m gta_core compare` runs "
    "them, sharing its cache): where B beats A, class by class and clip by clip, and whether an error is a "
    "time-reversal confusion. Select a clip in the table to open it in the Query point view."
)


def choose_dataset(settings) -> tuple[str, str, str, list[str], int]:
    """(dataset name, folder, split, class names, clips); stops the page when the folder is not a dataset."""
    roots = dataset_engine.dataset_names(settings.datasets)
    left, right = st.columns([2, 1])
    names, splits = list(roots), list(dataset_engine.SPLITS)
    name = ui.remember("dataset_root", left.selectbox(
        "Dataset folder", names, index=ui.kept_index("dataset_root", names), key="dataset_root"))
    split = ui.remember("dataset_split", right.radio(
        "Split", splits, index=ui.kept_index("dataset_split", splits), horizontal=True, key="dataset_split"))
    try:
        classes, clips = dataset_engine.dataset_index(roots[name], split)
    except (FileNotFoundError, ValueError, KeyError) as error:
        st.error(f"{roots[name]}: {ui.plain_error(error)}")
        st.stop()
    if not clips:
        st.info(f"The {split} split of {name} has no clips.")
        st.stop()
    return name, str(roots[name]), split, classes, len(clips)


def comparable(entries, classes: list[str]) -> list:
    """The chosen checkpoints that know every class of the dataset (and share one label set); notes the others."""
    readable = [e for e in entries if e.config is not None]
    usable = [e for e in readable if set(classes) <= set(e.config.class_names)]
    usable = [e for e in usable if set(e.config.class_names) == set(usable[0].config.class_names)]
    skipped = [e.name for e in entries if e not in usable]
    if skipped:
        st.caption(f"Not compared: {', '.join(skipped)} (other classes than this dataset's, or unreadable).")
    if len(usable) < 2:
        st.info("Choose 2–4 checkpoints trained on this dataset's classes in the sidebar.")
        st.stop()
    return usable


def load_report(request: CompareRequest, num_clips: int) -> dict:
    """The cached report, else computed with a progress bar (at once for a small split, else on request)."""
    report = dataset_engine.cached_report(request)
    if report is not None:
        return report
    what = f"{len(request.checkpoints)} checkpoints on {num_clips} clips"
    if num_clips > AUTO_RUN_CLIPS and not st.button(f"Compare {what}", key="dataset_run"):
        st.info(f"Not computed yet: {what} on {request.device}.")
        st.stop()
    bar = st.progress(0.0, text=f"Comparing {what}…")
    report = dataset_engine.compute_report(
        request, lambda done, total: bar.progress(done / total, text=f"Comparing {what}: batch {done} of {total}")
    )
    bar.empty()
    return report


def summary(report: dict) -> None:
    rows = []
    for name in report["checkpoints"]:
        m = report["metrics"][name]
        rows.append({
            "checkpoint": name, "top-1 %": round(100 * m["top1"], 1), "top-5 %": round(100 * m["top5"], 1),
            "errors": m["errors"], "time-reversal confusions": m.get("reversal_confusions"),
        })
    st.dataframe(rows, hide_index=True)


def choose_pair(names: list[str]) -> tuple[str, str]:
    left, right = st.columns(2)
    a = left.selectbox("A", names, index=ui.kept_index("dataset_a", names), key="dataset_a")
    b = right.selectbox("B", names, index=ui.kept_index("dataset_b", names, len(names) - 1), key="dataset_b")
    return ui.remember("dataset_a", a), ui.remember("dataset_b", b)


def pair_numbers(report: dict, a: str, b: str) -> None:
    pair = next((p for p in report["pairwise"] if (p["a"], p["b"]) in ((a, b), (b, a))), None)
    if pair is None:
        return
    swap = pair["a"] != a
    only_a, only_b = pair["only_a_right"], pair["only_b_right"]
    if swap:
        only_a, only_b = only_b, only_a
    gap = -pair["accuracy_gap"] if swap else pair["accuracy_gap"]
    cells = st.columns(5)
    cells[0].metric("agree", f"{100 * pair['agreement']:.1f}%")
    cells[1].metric("only A right", only_a)
    cells[2].metric("only B right", only_b)
    cells[3].metric("both wrong", pair["both_wrong"])
    cells[4].metric("acc(A) − acc(B)", f"{100 * gap:+.1f} pts", help="= (only A right − only B right) / clips")


def class_figures(report: dict, a: str, b: str) -> None:
    classes, per_class = report["class_names"], report["per_class"]
    ia, ib = report["checkpoints"].index(a), report["checkpoints"].index(b)
    st.markdown("**Per-class accuracy**, sorted by acc(B) − acc(A)")
    ui.chart(per_class_figure(classes, [per_class[c]["accuracy"][ia] for c in classes],
                              [per_class[c]["accuracy"][ib] for c in classes], a, b), key="dataset_per_class")
    st.markdown("**Confusion matrices** (rows: true class; red squares: the class's time-reversal pair)")
    for column, name, key in zip(st.columns(2), (a, b), ("dataset_confusion_a", "dataset_confusion_b")):
        with column:
            m = report["metrics"][name]
            ui.chart(confusion_figure(m["confusion_matrix"], classes, report["reverse_pairs"], name), key=key)
            if "reversal_confusions" in m:
                st.caption(f"{m['reversal_confusions']} of {m['errors']} errors predict the time-reversal pair.")


def clip_table(report: dict, a: str, b: str, dataset: str, split: str, labels: list[str]) -> None:
    filters = list(FILTERS)
    which = ui.remember("dataset_filter", st.radio(
        "Clips", filters, index=ui.kept_index("dataset_filter", filters), horizontal=True, key="dataset_filter"))
    clips = report["clips"] if which == "all clips" else only_right(report, a, b, which)
    ia, ib = report["checkpoints"].index(a), report["checkpoints"].index(b)
    rows = [{
        "clip": c["id"], "class": c["label"], f"A: {a}": c["predictions"][ia], "p(A)": c["scores"][ia],
        f"B: {b}": c["predictions"][ib], "p(B)": c["scores"][ib], "time-reversal error": _reversal(c, ia, ib),
    } for c in clips]
    count = f"{len(rows)} clip{'s' if len(rows) != 1 else ''}"
    st.caption(f"{count} {which if which != 'all clips' else 'in all'}. Select one to open it in Query point with "
               "these checkpoints.")
    event = st.dataframe(rows, hide_index=True, on_select="rerun", selection_mode="single-row", key="dataset_clips")
    if event.selection.rows:
        ui.open_in_query_point(dataset, f"{split}/{clips[event.selection.rows[0]]['id']}", labels)


def _reversal(clip: dict, ia: int, ib: int) -> str:
    """Which of A, B predicted the clip's time-reversal pair ("" without reverse_pairs.json)."""
    flags = clip.get("reversal_confusion")
    return ", ".join(name for name, i in (("A", ia), ("B", ib)) if flags and flags[i])


def temporal_statistics(report: dict) -> None:
    st.markdown("**Temporal weights per class**: instance-specific (TA / TAPE) against global (GTA)")
    stats = report["temporal_stats"]
    learned = {f"{n} · {blk}": s for n, blocks in stats.items() for blk, s in blocks.items() if "per_class" in s}
    shared = {f"{n} · {blk}": s for n, blocks in stats.items() for blk, s in blocks.items() if "global" in s}
    if not learned:
        st.info("None of these checkpoints has TA / TAPE blocks (DNL, TAPE): no per-class temporal weights.")
    left, right = st.columns([3, 1]) if learned and shared else (st.container(), st.container())
    with left:
        if learned:
            options = list(learned)
            label = ui.remember("dataset_stats", st.selectbox(
                "TA / TAPE block", options, index=ui.kept_index("dataset_stats", options), key="dataset_stats"))
            s = learned[label]
            three_d = pathway(label.split(" · ")[-1]) is not None     # SlowFast: T' time steps of α frames
            ui.chart(class_matrices_figure(s["per_class"], f"{label} ({s['kind']}): mean over each class's clips",
                                           steps=three_d), key="dataset_class_matrices")
            low, high = min(s["clips"].values()), max(s["clips"].values())
            st.caption(f"Clips differ from their class mean by {100 * s['within_class_spread']:.0f}% and class means "
                       f"from their average by {100 * s['between_class_spread']:.0f}% (relative Frobenius norm; "
                       f"{low if low == high else f'{low}–{high}'} clips per class).")
    with right:
        if shared:
            options = list(shared)
            label = ui.remember("dataset_global", st.selectbox(
                "GTA block", options, index=ui.kept_index("dataset_global", options), key="dataset_global"))
            ui.chart(matrix_figure(shared[label]["global"]["M̂_P"], f"{label}: mean |M̂_P|"), key="dataset_global_m")
            st.caption("GTA's M̂ is learned, not computed from the clip: the same matrix for every clip and class "
                       "(spreads 0).")


ctx = st.session_state.get(ui.CONTEXT_KEY)
settings = load_settings(sys.argv[1:])
dataset, folder, split, classes, num_clips = choose_dataset(settings)
entries = comparable(ctx.entries if ctx else [], classes)
request = CompareRequest(tuple(str(e.path) for e in entries), folder, split, device=ctx.device if ctx else "cpu")
report = load_report(request, num_clips)
summary(report)
a, b = choose_pair(report["checkpoints"])
pair_numbers(report, a, b)
class_figures(report, a, b)
clip_table(report, a, b, dataset, split, [e.description for e in entries])
st.divider()
temporal_statistics(report)
