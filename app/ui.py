"""Sidebar, shared per-session context and small render helpers used by every view.

main.py builds a `Context` on every run (video, results, query) and stores it
in `st.session_state`; each view reads it with `page_context()`. Per-user state
lives only in session_state; the caches in engine.py hold immutable values.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
import streamlit as st

from gta_core import CheckpointError
from gta_core.query_dependence import block_scores
from gta_core.video import VIDEO_SUFFIXES, VideoError
from gta_core.views import (
    block_kind, crop_point, dataset_label, find_record, layer_for_stage, record_note, scene_point, step_frames, tick_names,
)
from gta_core.views import frame_for as video_frame_for

from . import dataset_engine, engine
from .settings import Settings, checkpoint_folders

CONTEXT_KEY = "gta_lens_context"
UPLOAD_FOLDER_KEY = "gta_lens_upload_folder"   # engine.UploadFolder: removed with the session
MAX_MODELS = 4
# What the app opens on: the shipped NL, DNL and GTA models of the temporal set, on one of its clips,
# and the appearance set's GTA, so that the temporal view compares two datasets' learned matrices.
DEFAULT_CHECKPOINTS = ("temporal_r2d18_nl", "temporal_r2d18_dnl", "temporal_r2d18_gta", "appearance_r2d18_gta")
DEFAULT_VIDEO_HINT = "temporal__"
SOURCES = ("Bundled", "Folder", "Dataset", "Upload")
IG_STEP_CHOICES = (4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Query:
    """One point of the scene: frame t and (fy, fx) of the reference model's clip and crop.

    The reference is the model with the longest clip (the one the sliders and
    the picker show). Each model reads the same moment and the same place of
    the scene through its own sampling and crop (`at`).
    """

    block: str
    t: int                     # a frame of the reference clip (`frames` long)
    fy: float                  # fraction of the reference crop's height, in [0, 1)
    fx: float
    frames: int = 0            # 0: every model's clip has t
    reference_indices: tuple[int, ...] = ()       # the reference clip's frame indices in the video
    reference_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)   # its crop in the whole frame

    def frame_for(self, clip_frames: int, frame_indices=()) -> int:
        """The query frame in a clip of `clip_frames` frames sampled from the same video.

        With both clips' frame indices, the frame nearest the same video frame
        (gta_core.views.frame_for: a dense 32-frame clip and 8 TSN segments meet
        at the same moment). Without them, clips are taken as spread evenly:
        frame t of a T-frame clip sits at time (t + ½)/T.
        """
        if self.reference_indices and len(frame_indices) == clip_frames:
            return video_frame_for(self.reference_indices[min(self.t, len(self.reference_indices) - 1)],
                                   frame_indices)
        if not self.frames or self.frames == clip_frames:
            return min(self.t, clip_frames - 1)
        return min(clip_frames - 1, int((self.t + 0.5) * clip_frames / self.frames))

    def at(self, crop_box) -> tuple[float, float, bool]:
        """(fy, fx) of the same scene point in a crop `crop_box`, and whether it lies inside that crop."""
        return crop_point(*scene_point(self.fy, self.fx, self.reference_box), crop_box)


@dataclass
class Context:
    video: engine.VideoChoice | None
    truth: str | None
    results: list[engine.ModelResult]
    errors: dict[str, str]
    query: Query | None
    top_k: int
    entries: list[engine.CheckpointEntry] = field(default_factory=list)   # the sidebar's checkpoints
    device: str = "cpu"


def plain_error(error: BaseException) -> str:
    """A one-paragraph message for the person, never a traceback."""
    if isinstance(error, (CheckpointError, VideoError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------- the URL: a link opens the same figure
# ?source=Bundled&video=<file>&models=<folder>&models=<folder>&view=<page>&block=res3.1&t=4&y=50&x=50
# Every run writes the choices into st.query_params; the sidebar's widgets take their first value from
# it, so a link a researcher sends opens on the same video, checkpoints, view and query. Values that no
# longer exist (a renamed file, a missing checkpoint) fall back to the defaults. An upload is not shared.
URL_OPENED_KEY = "gta_lens_url_view_opened"


def from_url(name: str, many: bool = False):
    """A value from the page's URL (a list when `many`), or None."""
    if name not in st.query_params:
        return None
    return st.query_params.get_all(name) if many else st.query_params.get(name)


def _url_int(name: str, low: int, high: int) -> int | None:
    value = from_url(name)
    return int(value) if value is not None and value.isdigit() and low <= int(value) <= high else None


def open_shared_view(pages: list, current) -> None:
    """On a session's first run, switch to the view a shared link names (`view=<page url path>`)."""
    if st.session_state.get(URL_OPENED_KEY):
        return
    st.session_state[URL_OPENED_KEY] = True
    wanted = next((page for page in pages if page.url_path == from_url("view")), None)
    if wanted is not None and wanted.url_path != current.url_path:
        # switch_page clears the URL's parameters unless they are passed on
        st.switch_page(wanted, query_params={k: st.query_params.get_all(k) for k in st.query_params})


def share_in_url(video: engine.VideoChoice | None, entries: list, query: Query | None, page) -> None:
    source = st.session_state.get("video_source")
    params: dict = {"source": source} if source else {}
    if video is not None and source != "Upload":
        params["video"] = st.session_state.get(f"video_{source}")
    if source == "Dataset":
        params["dataset"] = st.session_state.get("video_dataset")
    params["models"] = [entry.name for entry in entries]
    params["view"] = page.url_path
    if query is not None:
        params.update(block=query.block, t=str(query.t), y=str(int(query.fy * 100)), x=str(int(query.fx * 100)))
    params = {k: v for k, v in params.items() if v not in (None, "", [])}   # the default view has path ""
    as_lists = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    if {k: st.query_params.get_all(k) for k in st.query_params} != as_lists:   # write only what changed
        st.query_params.from_dict(params)


# --------------------------------------------------------------------------- from the Dataset view to a clip
JUMP_KEY = "gta_lens_jump"
KEPT_KEY = "gta_lens_kept"


def open_in_query_point(dataset: str, clip: str, checkpoints: list[str]) -> None:
    """Show a dataset clip in the Query point view with these checkpoints (multiselect labels).

    The sidebar's widgets already exist in this run, so their values are set at
    the start of the next one (`apply_jump`), before they are drawn.
    """
    st.session_state[JUMP_KEY] = {"dataset": dataset, "clip": clip, "checkpoints": checkpoints}
    st.switch_page("views/query.py")


def apply_jump() -> None:
    """At the top of a run: a pending jump from the Dataset view becomes the sidebar's choices."""
    jump = st.session_state.pop(JUMP_KEY, None)
    if jump is not None:
        st.session_state.update(
            video_source="Dataset", video_dataset=jump["dataset"], video_Dataset=jump["clip"],
            checkpoints=jump["checkpoints"],
        )


def kept_index(key: str, options: list, default: int = 0) -> int:
    """The index to draw a view's selectbox or radio with: its last value (`remember`) when there is one.

    Streamlit forgets the value of a widget that a run does not draw (the person
    went to another view); the index brings it back without writing the widget's state.
    """
    kept = st.session_state.get(KEPT_KEY, {}).get(key)
    return options.index(kept) if kept in options else default


def remember(key: str, value):
    """Keep a view widget's value for `kept_index`; returns it."""
    st.session_state.setdefault(KEPT_KEY, {})[key] = value
    return value


# --------------------------------------------------------------------------- sidebar: inputs


def choose_video(settings: Settings) -> engine.VideoChoice | None:
    st.sidebar.subheader("Video")
    sources = [s for s in SOURCES if s != "Folder" or settings.video_folders]
    shared = from_url("source")
    source = st.sidebar.radio(
        "Source", sources, index=sources.index(shared) if shared in sources else 0, horizontal=True, key="video_source",
    )
    try:
        if source == "Upload":
            upload = st.sidebar.file_uploader(
                "Upload a video", type=[s[1:] for s in VIDEO_SUFFIXES], key="video_upload",
                help="Probed in a separate process (size, frame count, resolution, decodability) before use.",
            )
            if upload is None:
                return None
            return engine.video_from_upload(upload.name, upload.getvalue(), upload_folder())
        if source == "Dataset":
            return _dataset_video(settings)
        folders = settings.assets if source == "Bundled" else settings.video_folders
        # Bundled: the sample dataset's clips are listed under "Dataset", with their split and class.
        videos = [(folder, path) for folder in folders for path in engine.listed_videos(folder, source == "Bundled")]
        if not videos:
            where = ", ".join(str(f) for f in folders)
            st.sidebar.info(f"No videos in {where}. Upload one instead.")
            return None
        by_label = {str(path.relative_to(folder)): path for folder, path in videos}
        # Start on a video that comes with a label, so Predictions can show the ground truth.
        # The demo models are trained on the temporal set: prefer one of its clips.
        labelled = [i for i, path in enumerate(by_label.values()) if engine.ground_truth(str(path), path.stat().st_mtime_ns)]
        labelled.sort(key=lambda i: DEFAULT_VIDEO_HINT not in list(by_label)[i])
        index = list(by_label).index(from_url("video")) if from_url("video") in by_label else (labelled or [0])[0]
        label = st.sidebar.selectbox("File", list(by_label), index=index, key=f"video_{source}")
        return engine.video_from_file(by_label[label], trusted=source == "Bundled")
    except (OSError, VideoError, ValueError, KeyError) as error:
        st.sidebar.error(plain_error(error))
        return None


def upload_folder() -> engine.UploadFolder:
    """This session's private upload folder; it goes with the session's state."""
    if UPLOAD_FOLDER_KEY not in st.session_state:
        st.session_state[UPLOAD_FOLDER_KEY] = engine.UploadFolder()
    return st.session_state[UPLOAD_FOLDER_KEY]


def _dataset_video(settings: Settings) -> engine.VideoChoice | None:
    """A clip of a dataset folder (--data / GTA_LENS_DATA, default the bundled sample set), by split and id."""
    roots = dataset_engine.dataset_names(settings.datasets)
    names, shared = list(roots), from_url("dataset")
    name = st.sidebar.selectbox(
        "Dataset", names, index=names.index(shared) if shared in names else 0, key="video_dataset",
    )
    clips = {c.label: c for c in dataset_engine.listed_clips(roots[name], st.session_state.get("video_Dataset"))}
    if not clips:
        st.sidebar.info(f"No clips in {roots[name]}.")
        return None
    labels, wanted = list(clips), from_url("video")
    label = st.sidebar.selectbox(
        "Clip", labels, index=labels.index(wanted) if wanted in clips else 0, key="video_Dataset",
        format_func=lambda l: f"{l} · {clips[l].class_name}" if l in clips else l,
    )
    return engine.video_from_file(clips[label].path, trusted=dataset_engine.is_bundled(roots[name]))


def choose_checkpoints(settings: Settings) -> list[engine.CheckpointEntry]:
    st.sidebar.subheader("Checkpoints")
    entries = [engine.checkpoint_entry(path) for path in checkpoint_folders(settings.checkpoint_roots)]
    if not entries:
        roots = ", ".join(str(r) for r in settings.checkpoint_roots)
        st.sidebar.warning(f"No checkpoints in {roots}.")
        return []
    for entry in entries:
        if entry.config is None:
            st.sidebar.warning(entry.description, icon="⚠️")
    by_label = {entry.description: entry for entry in entries if entry.config is not None}
    if not by_label:
        return []
    shared = [label for name in from_url("models", many=True) or [] for label, e in by_label.items() if e.name == name]
    preferred = shared[:MAX_MODELS] or [
        label for name in DEFAULT_CHECKPOINTS for label, e in by_label.items() if e.name == name
    ]
    # The same default on every run: the default is part of the widget's identity, and a default that
    # changed after the first run made the browser drop the chosen models on the next page. A value in
    # the session (the person's, or one the Dataset view set) still wins.
    chosen = st.sidebar.multiselect(
        "Models (1–4)", list(by_label), default=preferred or list(by_label)[:3], max_selections=MAX_MODELS,
        key="checkpoints",
    )
    return [by_label[label] for label in chosen]


def choose_runtime() -> tuple[str, str]:
    st.sidebar.subheader("Runtime")
    devices = ["auto", "cpu"] + (["cuda"] if engine.cuda_available() else [])
    choice = st.sidebar.selectbox("Device", devices, key="device", help="auto: CUDA when present, else CPU")
    precision = st.sidebar.selectbox(
        "Precision", ["float32", "bfloat16"], key="precision", help="bfloat16 runs the model under autocast",
    )
    device = engine.resolve_device(choice)
    st.sidebar.caption(f"running on **{device}**" + ("" if engine.cuda_available() else " (no CUDA here)"))
    return device, precision


def server_panel(records_dtype: str) -> None:
    """The server's cache: bytes held by models and captures of every session, against the budget."""
    usage = engine.memory_cache().usage()
    with st.sidebar.expander("Server", expanded=False):
        share = usage.used / usage.budget if usage.budget else 0.0
        st.progress(min(share, 1.0), text=f"cache {usage.used / 2**20:,.0f} of {usage.budget / 2**20:,.0f} MB")
        kinds = ", ".join(f"{kind}s {size / 2**20:,.1f} MB" for kind, size in sorted(usage.by_kind.items()))
        st.caption(f"{usage.entries} cached ({kinds or 'nothing yet'}); {usage.evictions} evicted since start; "
                   f"records kept as {records_dtype} on the CPU")


# --------------------------------------------------------------------------- inference


def run_models(
    video: engine.VideoChoice, entries: list[engine.CheckpointEntry], device: str, precision: str,
    records_dtype: str = "float32",
) -> tuple[list[engine.ModelResult], dict[str, str]]:
    """Every chosen model on the video (cached); a progress bar while any model runs."""
    results, errors = [], {}
    try:
        decoder = engine.decoder_for(video)
    except VideoError as error:
        return [], {"video": plain_error(error)}
    progress = st.empty()
    for index, entry in enumerate(entries):
        if entry.error:
            errors[entry.name] = entry.error
            continue
        progress.progress(index / len(entries), text=f"Running {entry.name} ({index + 1}/{len(entries)}) on {device}…")
        try:
            results.append(
                engine.run_model(
                    str(entry.path), engine.weights_mtime(entry.path), video.digest, device, precision,
                    str(video.path), decoder, records_dtype,
                )
            )
        except Exception as error:  # noqa: BLE001 - every failure becomes a message, never a traceback
            errors[entry.name] = plain_error(error)
    progress.empty()
    return results, errors


# --------------------------------------------------------------------------- sidebar: query point


QUERY_KEY = "gta_lens_query"   # the query the person chose: {"block", "t", "y", "x"} (y, x in % of the crop)
QUERY_WIDGETS = {"block": "q_block", "t": "q_t", "y": "q_y", "x": "q_x"}


def query_state() -> dict:
    """The chosen query, kept outside the widgets' state.

    Streamlit drops a widget's state on a run that does not draw it (e.g. while
    an upload is pending), and the browser then re-mounts the slider at its
    default: the query jumped to (0 %, 0 %) and, for a run, the sidebar and the
    figures disagreed. Every run writes this state into the widgets' keys
    before they are drawn (so the browser always shows what the figures use),
    and the widgets' callbacks write changes back.
    """
    if QUERY_KEY not in st.session_state:   # a new session: from a shared link, else the centre of the middle frame
        y, x = _url_int("y", 0, 99), _url_int("x", 0, 99)
        st.session_state[QUERY_KEY] = {
            "block": from_url("block"), "t": _url_int("t", 0, 10_000), "y": 50 if y is None else y, "x": 50 if x is None else x,
        }
    return st.session_state[QUERY_KEY]


def _keep_query(field: str) -> None:
    query_state()[field] = st.session_state[QUERY_WIDGETS[field]]


def choose_query(results: list[engine.ModelResult]) -> tuple[Query | None, int]:
    st.sidebar.subheader("Query point")
    top_k = st.sidebar.slider("Top-k", 1, 10, 5, key="top_k")
    if not results:
        return None, top_k
    # One entry per stage.index: "res3.1" of an R2D and "slow.res3.1" of a SlowFast are queried together.
    by_position: dict[str, str] = {}
    for result in results:
        for name in result.capture.records:
            by_position.setdefault(_stage_index(name), name)
    blocks = list(by_position.values())
    if not blocks:
        st.sidebar.info("The chosen models have no attention blocks.")
        return None, top_k
    frames = max(r.frames.shape[0] for r in results)
    # The kept query, fitted to these models (another video or checkpoint may have fewer frames or other
    # blocks); (y, x) are relative, so they carry over unchanged.
    kept = query_state()
    if kept["block"] not in blocks:
        kept["block"] = blocks[0]
    kept["t"] = frames // 2 if kept["t"] is None else min(max(int(kept["t"]), 0), frames - 1)
    for field, key in QUERY_WIDGETS.items():
        st.session_state[key] = kept[field]
    block = st.sidebar.selectbox(
        "Block", blocks, key="q_block", on_change=_keep_query, args=("block",),
        help="an inserted attention block (stage.index)",
    )
    t = st.sidebar.slider("Frame t", 0, frames - 1, key="q_t", on_change=_keep_query, args=("t",))
    y = st.sidebar.slider("y (% of height)", 0, 99, key="q_y", on_change=_keep_query, args=("y",))
    x = st.sidebar.slider("x (% of width)", 0, 99, key="q_x", on_change=_keep_query, args=("x",))
    st.sidebar.caption("Or click on the frame in the Query point view.")
    reference = reference_result(results)
    return Query(block, t, (y + 0.5) / 100, (x + 0.5) / 100, frames, reference.frame_indices,
                 reference.crop_box), top_k


def reference_result(results: list[engine.ModelResult]) -> engine.ModelResult:
    """The model whose clip the frame slider runs over and whose crop the picker shows: the longest clip."""
    return max(results, key=lambda r: r.frames.shape[0])


def _stage_index(block: str) -> str:
    return ".".join(block.split(".")[-2:])


def on_pick() -> None:
    """Callback of the picker chart: a clicked point becomes the query's (y, x).

    The point's x, y are pixel coordinates of the shown crop (pixel centres at integers).
    """
    state = st.session_state.get("picker") or {}
    points = state.get("selection", {}).get("points", [])
    if not points:
        return
    size = st.session_state.get("picker_size", 112)
    try:
        fy, fx = (float(points[0]["y"]) + 0.5) / size, (float(points[0]["x"]) + 0.5) / size
    except (KeyError, TypeError, ValueError):
        return
    query_state().update(y=min(99, max(0, int(fy * 100))), x=min(99, max(0, int(fx * 100))))


# --------------------------------------------------------------------------- views


def page_context(title: str, caption: str, needs_query: bool = True) -> Context:
    """Title the page and return the context main.py built for this run.

    Stops the page with a message when there is nothing to show.
    """
    st.subheader(title)
    st.caption(caption)
    ctx: Context | None = st.session_state.get(CONTEXT_KEY)
    if ctx is None or ctx.video is None:
        st.info("Choose a video in the sidebar (a bundled one, one from a folder, or an upload).")
        st.stop()
    for name, message in ctx.errors.items():
        st.error(message if name == "video" else f"{name}: {message}")
    if not ctx.results:
        if not ctx.errors:
            st.info("Choose 1–4 checkpoints in the sidebar.")
        st.stop()
    if needs_query and ctx.query is None:
        st.info("The chosen models have no attention block to show.")
        st.stop()
    return ctx


def ig_steps_slider(column, key: str) -> int:
    """Integrated Gradients' step count, offered alike on Attributions and Export (32: ExportOptions' default)."""
    return column.select_slider("IG steps", IG_STEP_CHOICES, value=32, key=key)


def model_header(result: engine.ModelResult) -> None:
    kinds = sorted({block_kind(r) for r in result.capture.records.values()}) or ["no attention block"]
    st.markdown(
        f"**{result.name}**  \n{result.config.model_name or 'custom'} · {', '.join(kinds)}  \n"
        f"trained on {dataset_label(result.config.dataset)}"
    )
    if engine.is_random(result.config):
        st.caption(":orange[random weights: a stand-in until trained checkpoints are shipped]")


def record_for(result: engine.ModelResult, query: Query, swapped: bool = False):
    capture = result.swapped if swapped else result.capture
    if capture is None:
        return None
    record = find_record(capture.records, query.block)
    layer = layer_for_stage(capture.records, query.block) if record is None else None
    if layer is not None:
        st.caption(f"{result.name} has Transformer layers, not ResNet stages: its last layer {layer} is shown "
                   f"beside {query.block} (choose a layer.N block for another).")
        record = capture.records[layer]
    if record is not None and (note := record_note(record)):
        st.caption(note)
    if record is None:
        st.info(f"{result.name} has no block {query.block} (it has {', '.join(capture.records) or 'none'}).")
    return record


@dataclass(frozen=True)
class Timeline:
    """Where the query sits in one model's block: the frame of its clip, the images and names of its steps."""

    frame: int                 # the query frame in this model's clip
    images: "np.ndarray"       # (T', S, S, 3): one frame per time step of the block
    names: list[str] | None    # per-step tick names; None when every step is one frame (R2D)
    fy: float = 0.5            # the query point in this model's crop
    fx: float = 0.5
    inside: bool = True        # False: the scene point lies outside this model's crop (read at its edge)


def timeline(result: engine.ModelResult, record, query: Query) -> Timeline:
    clip_frames = result.frames.shape[0]
    fy, fx, inside = query.at(result.crop_box)
    return Timeline(query.frame_for(clip_frames, result.frame_indices), step_frames(result.frames, record),
                    tick_names(record, clip_frames), fy, fx, inside)


def model_columns(results: list[engine.ModelResult]):
    return zip(st.columns(len(results)), results)


ALL_MODELS = "all, side by side"


def shown_results(ctx: Context, key: str) -> list[engine.ModelResult]:
    """For views with many frames per model: every model side by side, or one alone at full width,
    so that its frames are legible (4 models × 8 frames leave ~25 px per frame)."""
    if len(ctx.results) < 2:
        return ctx.results
    names = [r.name for r in ctx.results]
    choice = st.radio("Models", [ALL_MODELS, *names], horizontal=True, key=key)
    return ctx.results if choice == ALL_MODELS else [ctx.results[names.index(choice)]]


def block_columns(ctx: Context, results: list[engine.ModelResult] | None = None):
    """One column per model (default: all), headed; yields (index, result, record of the query's block)
    inside the column."""
    for index, (column, result) in enumerate(model_columns(ctx.results if results is None else results)):
        with column:
            model_header(result)
            record = record_for(result, ctx.query)
            if record is not None:
                yield index, result, record


def chart(figure, key: str) -> None:
    st.plotly_chart(figure, key=key, config={"displaylogo": False})


def video_caption(ctx: Context) -> None:
    first = ctx.results[0]
    source = "bundled" if ctx.video.trusted else "probed"
    text = f"**{ctx.video.name}** ({source}) · {first.num_decoded_frames} decoded frames"
    if ctx.truth:
        text += f" · ground truth: **{ctx.truth}**"
    st.markdown(text)
    if first.notice:
        st.info(f"Note: {first.notice}.")
    if first.repeated:
        st.warning(f"The video has fewer frames than the model's {first.frames.shape[0]}; some frames repeat.")


DEPENDENCE_KEY = "query_dependence_scores"


def dependence(result: engine.ModelResult, record) -> dict:
    """block_scores of a shown record, computed once per capture (kept in the session), not on every rerun:
    an imported NL at 224² has ~10 M weights per block to read twice."""
    store = st.session_state.setdefault(DEPENDENCE_KEY, {})
    key = (result.name, id(result.capture), record.name)      # captures live in engine's resource cache
    entry = store.get(key)
    # A weak reference: the store must not keep a capture the memory budget evicted, and an id reused by a
    # later capture must not return the evicted one's scores.
    if entry is None or entry[0]() is not result.capture:
        if len(store) > 64:
            store.clear()
        entry = store[key] = (weakref.ref(result.capture), block_scores(record))
    return entry[1]
