"""Plans: the editor (text or file), what the server derives from one, and what submitting it did."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core import DryRunStep, PlanPreview, RunbookVersionView, RunbookView, SubmitResult
from ui import state
from ui.components.plain import md_text
from ui.components.tables import views_table, when

EXAMPLE = """name: disk-usage
description: How full are the disks on localhost?
steps:
  - name: df
    action: shell
    target: localhost
    params: {command: "df -h"}
"""


@dataclass(frozen=True)
class PlanDraft:
    """The plan the user wants previewed or submitted, and how."""

    source: str | bytes
    background: bool


def plan_editor() -> PlanDraft:
    """A file upload or a text area (the upload wins), and the background option."""
    upload = st.file_uploader("Plan file (YAML or JSON)", type=["yaml", "yml", "json"], key=state.PLAN_FILE)
    text = st.text_area("Plan (YAML or JSON)", key=state.PLAN_TEXT, height=260, placeholder=EXAMPLE)
    background = st.checkbox(
        "Run in the background", key=state.PLAN_BACKGROUND, help="Never run in this process, even a fast level-0 plan."
    )
    if upload is not None:
        st.caption(f"Using the uploaded file {md_text(upload.name)}; clear it to use the text.")
        return PlanDraft(upload.getvalue(), background)
    return PlanDraft(text, background)


def runbook_level(view: RunbookView) -> str:
    """The level the server derives from the runbook's steps (never what its description claims)."""
    if view.approval_level is None:
        return "invalid: its text no longer validates"
    return f"level {view.approval_level} ({view.action_class})"


def runbook_picker(runbooks: list[RunbookView]) -> RunbookView | None:
    """Start from a saved runbook: picking one loads its plan into the editor. Returns the one picked."""
    by_name = {r.name: r for r in runbooks}

    def load() -> None:
        picked = by_name.get(st.session_state.get(state.RUNBOOK_PICK) or "")
        if picked is not None:
            st.session_state[state.PLAN_TEXT] = picked.plan_text
            st.session_state[state.RUNBOOK_NAME] = picked.name
            st.session_state[state.RUNBOOK_DESCRIPTION] = picked.description

    st.selectbox(
        "Runbook library",
        list(by_name),
        index=None,
        placeholder="Start from a saved runbook…",
        # Options are plain text in Streamlit (no markdown); the derived level comes before the author's words.
        format_func=lambda name: " · ".join(
            part for part in (name, runbook_level(by_name[name]), by_name[name].description) if part
        ),
        key=state.RUNBOOK_PICK,
        on_change=load,
    )
    return by_name.get(st.session_state.get(state.RUNBOOK_PICK) or "")


def runbook_facts(view: RunbookView, versions: list[RunbookVersionView]) -> None:
    """Who owns and last changed the runbook, the level derived from its steps, and its versions."""
    owner = view.owner or "tenant admins"
    published = "published by an admin" if view.published else "not published"
    st.caption(
        md_text(
            f"{runbook_level(view).capitalize()}, derived by the server from its steps · version {view.version}, "
            f"saved by {view.updated_by or '-'} at {when(view.updated_at)} UTC · owner: {owner} · {published}"
        )
    )
    if view.description:
        st.text(f"Description (the author's words): {view.description}")
    with st.expander(f"Versions ({len(versions)})"):
        views_table(versions, ["version", "created_by", "created_at", "description", "text_hash"], empty="No versions.")


def dry_run_report(steps: list[DryRunStep]) -> None:
    """What each step would do, as its action describes it (nothing ran)."""
    st.subheader("Dry run: nothing was executed")
    for step in steps:
        icon = ":material/check_circle:" if step.ok else ":material/error:"
        st.markdown(f"{icon} **{step.index}.** {md_text(step.name)} · {md_text(step.action)} on {md_text(step.target)}")
        st.code(step.description or "(no description)", language=None)
        if step.error:
            st.error(md_text(f"{step.name}: {step.error}"))


def plan_preview(preview: PlanPreview) -> None:
    """Everything the server derived from the plan: classes, approvals, SLA, modes, policy, hash, steps."""
    st.subheader(f"Preview: {md_text(preview.name)}")
    cols = st.columns(4)
    cols[0].metric("Action class", preview.action_class)
    cols[1].metric("Approval level", preview.approval_level)
    cols[2].metric("Approvals required", preview.approvals_required)
    cols[3].metric("SLA class", preview.sla_class, help=f"estimated {preview.estimated_s:g} s")
    st.markdown(f"**Mode:** {preview.execution_mode} · **Run mode:** {preview.run_mode}")
    if preview.inputs:
        st.markdown("**Inputs** (in the plan the approver sees and the hash covers)")
        st.dataframe(
            [{"input": k, "value": str(v)} for k, v in preview.inputs.items()], hide_index=True, width="stretch"
        )
    if preview.secret_names:
        st.markdown("**Secrets referenced:** " + md_text(", ".join(preview.secret_names)))
    st.markdown("**Timeout policy** (seconds)")
    views_table([preview.policy])
    if preview.execution_limit_s is not None:
        st.caption(
            f"Limits: each step runs at most its step_limit_s below (its timeout_s, capped by the policy of its "
            f"class); the execution gets {preview.execution_limit_s} s of running time (approval, lock and "
            "level-3 gate waits do not count)."
        )
    st.caption("Plan hash (SHA-256)")
    st.code(preview.plan_hash, language=None)
    st.markdown("**Steps**")
    st.dataframe(preview.steps, hide_index=True, width="stretch")


def submit_outcome(result: SubmitResult) -> str:
    """A one-line account of a submit: created, or the duplicate it matched."""
    view = result.execution
    if result.created:
        return f"Submitted {view.name} as execution {view.execution_id}: {view.status}."
    return (
        f"Not submitted again: the same plan is already active as execution {view.execution_id} "
        f"({view.status}, requested by {view.requested_by})."
    )
