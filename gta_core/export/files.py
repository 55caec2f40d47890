"""The export's three writers: PNGs through plotly's own exporter, one HTML page, one MP4.

PNG. `PngWriter` is plotly's image export, kaleido, driving a headless
Chromium: a PNG is the figure a browser draws from the same go.Figure. kaleido
starts a browser per session (2-3 s on this CPU) and reloads its tab after every
figure (0.2-0.3 s for a small one), so one session serves a whole export, and it
runs in its own thread: the browser can start and draw while the models compute
and while the HTML page and the MP4 are written (see `export_video` for when). kaleido finds Debian's
`/usr/bin/chromium` (or Chrome, or the browser named by BROWSER_PATH) itself;
`--browser PATH` names another. Without one, `png_session` yields None and the
export writes everything but the PNGs (`NO_BROWSER_NOTE` says so).
Size: layout.width × layout.height, plotly.js's 700 × 450 where a builder sets
none. kaleido is called directly, as plotly.io.write_images calls it, because
write_images gives every figure 700 × 500 unless told otherwise (it does not
read the layout's size), drops the errors kaleido returns for failed figures,
and takes no browser path.
"""
from __future__ import annotations

import asyncio
import html
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

DEFAULT_WIDTH, DEFAULT_HEIGHT = 700, 450      # plotly.js's size for a layout that sets none
# Browser tabs drawing at once. The bench's 31 figures on this 2-core CPU (busy): 18.2 s with one
# tab, 14.0 s with two; of one tab's time, 2/3 is drawing and 1/3 kaleido's reload after each figure.
PNG_TABS = 2
MP4_FPS = 2
NO_BROWSER_NOTE = ("note: no Chromium or Chrome found, so no PNGs were written (the HTML page and the MP4 were); "
                   "PNGs need `apt-get install chromium`")


class PngWriter:
    """One kaleido session (a headless browser) in its own thread; `write` returns a Future.

    The browser starts at `start()` or at the first `write`, in the background.
    """

    def __init__(self, browser: str | None = None, tabs: int = PNG_TABS) -> None:
        """Raises kaleido.errors.ChromeNotFoundError when `browser` (or kaleido's search) finds none."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kaleido", daemon=True)
        self._thread.start()
        self._opened: asyncio.Future | None = None
        try:
            self._kaleido = self._call(self._create(browser, tabs)).result()
        except BaseException:
            self._stop_loop()
            raise

    async def _create(self, browser: str | None, tabs: int):
        import kaleido

        return kaleido.Kaleido(path=browser, n=tabs, mathjax=False)   # no MathJax: nothing from the network

    def _call(self, coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def start(self) -> None:
        """Start the browser now, without waiting for it."""
        self._call(self._open())

    async def _open(self) -> None:
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._kaleido.open())

    def write(self, figures: Sequence[tuple[object, Path]]) -> Future:
        """Render (go.Figure, path) pairs as PNGs; the Future's result is their paths."""
        for _, path in figures:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return self._call(self._write(list(figures)))

    async def _write(self, figures: list[tuple[object, Path]]) -> list[Path]:
        await self._open()
        await self._opened
        specs = [{"fig": figure, "path": Path(path), "opts": _png_options(figure)} for figure, path in figures]
        await self._kaleido.write_fig_from_object(specs, cancel_on_error=True)
        return [Path(path) for _, path in figures]

    def close(self) -> None:
        try:
            self._call(self._close()).result()
        finally:
            self._stop_loop()

    async def _close(self) -> None:
        if self._opened is None:
            return                 # the browser never started
        if not self._opened.done():
            self._opened.cancel()
        await self._kaleido.close()
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:          # e.g. the browser's watchdog after a failed start
            task.cancel()
        await asyncio.gather(*rest, self._opened, return_exceptions=True)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _png_options(figure) -> dict:
    layout = figure.layout
    return {"format": "png", "width": int(layout.width or DEFAULT_WIDTH),
            "height": int(layout.height or DEFAULT_HEIGHT), "scale": 1}


@contextmanager
def png_session(browser: str | Path | None = None, tabs: int = PNG_TABS) -> Iterator[PngWriter | None]:
    """A PngWriter for the block, or None when no browser is found (`browser`: a path, None: kaleido's search)."""
    from kaleido.errors import ChromeNotFoundError

    try:
        writer = PngWriter(None if browser is None else str(browser), tabs)
    except ChromeNotFoundError:
        writer = None
    try:
        yield writer
    finally:
        if writer is not None:
            writer.close()


def write_pngs(figures: Sequence[tuple[object, Path]], browser: str | Path | None = None) -> list[Path]:
    """Render (go.Figure, path) pairs in one browser session; [] and no files when there is no browser."""
    with png_session(browser) as writer:
        return writer.write(figures).result() if writer is not None else []


# --------------------------------------------------------------------------- HTML


def write_html(entries, views: dict[str, str], path: Path, title: str, plotlyjs: str = "inline",
               js_path: Path | None = None) -> Path:
    """One page: a section per view ({key: heading}, in order), the figures of each view side by side by model.

    `entries`: objects with .view, .model, .title, .figure (export's FigureEntry).
    """
    import plotly.offline

    if plotlyjs == "inline":
        script = f"<script>{plotly.offline.get_plotlyjs()}</script>"
    else:
        if js_path is None:
            raise ValueError("shared plotly.js needs js_path")
        relative = Path(*[".."] * (len(path.relative_to(js_path.parent).parts) - 1), js_path.name)
        script = f'<script src="{relative.as_posix()}"></script>'
    sections = [_html_section(view, heading, [e for e in entries if e.view == view])
                for view, heading in views.items()]
    toc = " · ".join(f'<a href="#{v}">{h}</a>' for v, h in views.items() if any(e.view == v for e in entries))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:16px}} .row{{display:flex;gap:12px;align-items:flex-start}}
.model{{flex:1;min-width:0}} figure{{margin:0 0 8px 0}} figcaption{{font-size:12px;color:#555}}</style>
{script}</head><body><h1>{html.escape(title)}</h1><p>{toc}</p>{"".join(sections)}</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _html_section(view: str, heading: str, entries) -> str:
    if not entries:
        return ""
    columns: dict[str, list] = {}
    for entry in entries:
        columns.setdefault(entry.model or "all models", []).append(entry)
    cells = []
    for model, figures in columns.items():
        blocks = "".join(
            f"<figure><figcaption>{html.escape(e.title)}</figcaption>"
            f"{e.figure.to_html(full_html=False, include_plotlyjs=False, config={'displaylogo': False})}</figure>"
            for e in figures
        )
        cells.append(f'<div class="model"><h3>{html.escape(model)}</h3>{blocks}</div>')
    return f'<section id="{view}"><h2>{heading}</h2><div class="row">{"".join(cells)}</div></section>'


# --------------------------------------------------------------------------- MP4


def write_mp4(frames: np.ndarray, path: Path, fps: int = MP4_FPS) -> Path:
    """(N, H, W, 3) uint8 RGB -> an H.264 MP4 (mpeg4 when libx264 is missing), yuv420p."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]   # yuv420p needs even sides
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"} if codec == "libx264" else {"qscale": "2"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
