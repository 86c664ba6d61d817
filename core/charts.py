"""Plotly figures the pages show; built here so they are tested without a browser."""

from __future__ import annotations

import math

import plotly.graph_objects as go

LAYOUT = dict(margin=dict(l=10, r=10, t=30, b=10), height=320,
              legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))


def characters_per_page(chunks: list[dict], title: str) -> go.Figure:
    """A document's characters per page, with its chunk count in the hover: thin pages and
    pages without text stand out."""
    pages: dict[int, list[int]] = {}
    for chunk in chunks:
        count = pages.setdefault(int(chunk["page"]), [0, 0])
        count[0] += len(chunk["text"])
        count[1] += 1
    numbers = sorted(pages)
    fig = go.Figure(go.Bar(x=numbers, y=[pages[n][0] for n in numbers],
                           customdata=[pages[n][1] for n in numbers],
                           hovertemplate="page %{x}: %{y} characters, %{customdata} chunks"
                                         "<extra></extra>"))
    # Whole page numbers only: a one-page document got ticks at 0.6, 0.8, 1, 1.2 and 1.4
    fig.update_layout(title=title, height=220, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(title="page", tick0=1, dtick=max(1, math.ceil(max(numbers, default=1) / 10))),
                      yaxis_title="characters")
    return fig


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing)."""
    out, last, debias = [], 0.0, 1.0
    for v in values:
        last = weight * last + (1 - weight) * v
        debias *= weight
        out.append(last / (1 - debias) if debias < 1 else v)
    return out


def loss_curve(metrics: list[dict], smoothing: float = 0.0, log_y: bool = False,
               best_step: int | None = None) -> go.Figure:
    """Training loss, the validation points (loss, and accuracy on its own axis) and, with
    early stopping, the best validation so far: the checkpoint that will be published."""
    train = [m for m in metrics if "loss" in m]
    evals = [m for m in metrics if "eval_loss" in m]
    fig = go.Figure()
    if train:
        raw = [m["loss"] for m in train]
        steps = [m["step"] for m in train]
        if smoothing:
            fig.add_scatter(x=steps, y=raw, mode="lines", name="train (raw)",
                            line=dict(color="#6baed6", width=1.5), opacity=0.8)
        fig.add_scatter(x=steps, y=smooth(raw, smoothing) if smoothing else raw, mode="lines",
                        name="train loss", line=dict(color="#1f77b4", width=2))
    if evals:
        fig.add_scatter(x=[m["step"] for m in evals], y=[m["eval_loss"] for m in evals],
                        mode="lines+markers", name="validation loss",
                        line=dict(color="#ff7f0e", width=2))
        scored = [m for m in evals if "eval_accuracy" in m]
        if scored:
            fig.add_scatter(x=[m["step"] for m in scored], y=[m["eval_accuracy"] for m in scored],
                            mode="lines+markers", name="validation accuracy", yaxis="y2",
                            line=dict(color="#2ca02c", width=2, dash="dot"))
            # its own ticks: following the loss axis's grid they fell on 13%, 37%, 62%…
            fig.update_layout(yaxis2=dict(title="accuracy", overlaying="y", side="right",
                                          range=[0, 1.02], tickformat=".0%", showgrid=False,
                                          tickmode="array", tickvals=[0, .25, .5, .75, 1]))
    best = next((m for m in evals if m["step"] == best_step), None)
    if best:
        fig.add_scatter(x=[best["step"]], y=[best["eval_loss"]], mode="markers",
                        name=f"best (step {best['step']})",
                        marker=dict(symbol="star", size=16, color="#d62728"))
        fig.add_vline(x=best["step"], line_dash="dash", line_color="#d62728",
                      annotation_text="best", annotation_position="top")
    fig.update_layout(**LAYOUT, xaxis_title="step", yaxis_title="loss (lower is better)")
    last = max((m["step"] for m in metrics), default=1)
    fig.update_xaxes(dtick=max(1, math.ceil(last / 10)), rangemode="tozero")  # whole steps
    if log_y:
        fig.update_layout(yaxis_type="log")  # the loss axis only: accuracy stays linear
    return fig


def bars(counts: dict[str, float], x_title: str, percent: bool = False,
         chance: float | None = None, threshold: float | None = None) -> go.Figure:
    """Horizontal bars, values written beside them; `chance` marks the level a guess reaches,
    `threshold` the one a label must pass. The marks sit under the bars and their values."""
    fig = go.Figure(go.Bar(x=list(counts.values()), y=list(counts.keys()), orientation="h",
                           text=[f"{v:.0%}" if percent else f"{v:,}" for v in counts.values()],
                           # inside the bar where it fits: a value written after a bar that
                           # ends just short of the chance line was crossed by it
                           textposition="auto", insidetextanchor="end", cliponaxis=False,
                           textfont_size=12, insidetextfont_color="white", textangle=0,
                           outsidetextfont_color="#31333f", marker_color="#1f77b4"))
    fig.update_layout(**{**LAYOUT, "height": max(160, 50 + 30 * len(counts))},
                      xaxis_title=x_title, yaxis=dict(autorange="reversed"),
                      uniformtext=dict(minsize=12, mode="show"))  # never shrunk to fit a bar
    if percent:
        fig.update_xaxes(range=[0, 1.08], tickformat=".0%", tickvals=[0, .2, .4, .6, .8, 1])
    else:  # counts: whole numbers only, and room after the longest bar (five bars of 30
        # ended at the axis's edge, past its last tick, 28, their values turned on end)
        top = max(counts.values(), default=1)
        fig.update_xaxes(tickformat="d", dtick=max(1, math.ceil(top / 6)), range=[0, top * 1.1])
    # the labels sit above the bars (inside, one landed on the top bar), the threshold's a
    # line higher than chance's so that the two never cover each other
    marks = [(x, color, text) for x, color, text in ((chance, "#888", "chance"),
                                                     (threshold, "#d62728", "threshold"))
             if x is not None]
    for i, (x, color, text) in enumerate(marks):
        fig.add_vline(x=x, line_dash="dash", line_color=color, layer="below",
                      annotation_text=f"{text} {x:.0%}", annotation_position="top",
                      annotation_yshift=16 * i)
    if len(marks) > 1:
        fig.update_layout(margin_t=46)
    return fig


def confusion(matrix: list[list[int]], labels: list[str], title: str | None = None) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues",
                               text=matrix, texttemplate="%{text}", showscale=False,
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{z}<extra></extra>"))
    fig.update_layout(**{**LAYOUT, "height": max(260, 60 + 40 * len(labels))}, title=title,
                      xaxis_title="predicted", yaxis_title="true",
                      yaxis=dict(autorange="reversed"))
    return fig


def learning_curve(curve: list[dict], names: dict[str, str],
                   adapter: float | None = None) -> go.Figure:
    """Test accuracy against the number of training examples: a line for each of `names` (a
    key of the curve's rows: its legend), and `adapter` as one point, at all of them."""
    sizes = [row["train_examples"] for row in curve]
    fig = go.Figure()
    # told apart by hue and dash, not two shades of one blue
    styles = [dict(color="#1f77b4"), dict(color="#2ca02c", dash="dash")]
    for i, (key, name) in enumerate(names.items()):
        fig.add_scatter(x=sizes, y=[row[key] for row in curve], mode="lines+markers", name=name,
                        line=styles[i % len(styles)],
                        hovertemplate="%{y:.0%} trained on %{x}<extra></extra>")
    if adapter is not None:
        fig.add_scatter(x=[sizes[-1]], y=[adapter], mode="markers", name="LoRA adapter",
                        marker=dict(symbol="star", size=16, color="#d62728"),
                        hovertemplate="%{y:.0%} trained on %{x}<extra></extra>")
    fig.update_layout(**LAYOUT, xaxis_title="training examples", yaxis_title="test accuracy")
    fig.update_xaxes(tickvals=sizes, ticktext=[*map(str, sizes[:-1]), f"all ({sizes[-1]})"])
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


def rounds(federated: list[dict], centralised: list[dict] | None = None) -> go.Figure:
    """Test accuracy per round: the federation's global adapter, and centralised training on the
    pooled data with the same budget when it was run."""
    fig = go.Figure()
    fig.add_scatter(x=[r["round"] for r in federated], y=[r["accuracy"] for r in federated],
                    mode="lines+markers", name="federated (global adapter)")
    if centralised:
        fig.add_scatter(x=[r["round"] for r in centralised],
                        y=[r["accuracy"] for r in centralised], mode="lines+markers",
                        name="centralised (pooled data)", line=dict(dash="dash"))
    fig.update_layout(**LAYOUT, xaxis_title="round", yaxis_title="test accuracy")
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


def evaluation(table: list[dict], shares: list[str]) -> go.Figure:
    """Each configuration's shares (hit@1, hit@k, support@k, answer F1, refusal rate) side by
    side, one bar group per measure; a measure no configuration has is left out."""
    shares = [m for m in shares if any(row.get(m) is not None for row in table)]
    fig = go.Figure()
    for row in table:
        values = [row.get(m) for m in shares]
        fig.add_bar(x=shares, y=values, name=row["configuration"],
                    text=["–" if v is None else f"{v:.0%}" for v in values],
                    textposition="outside", cliponaxis=False)
    fig.update_layout(**LAYOUT, barmode="group")
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%", tickvals=[0, .2, .4, .6, .8, 1])
    return fig
