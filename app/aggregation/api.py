"""JSON routes of aggregation: leaderboard, consensus per prompt, excluded labelers."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.aggregation import service
from app.aggregation.consensus import ConsensusMethod
from app.aggregation.schemas import ExclusionIn, ExclusionOut, Leaderboard, PromptConsensus
from app.db import SessionDep
from app.deps import AdminUser
from app.http.bounds import AfterId, Id, Limit, Seed
from app.projects import service as project_service

router = APIRouter(prefix="/api/v1", tags=["aggregation"])


@router.get("/projects/{project_id}/leaderboard", response_model=Leaderboard)
def leaderboard(
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    rounds: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    seed: Seed = 0,
) -> object:
    """Models ranked by Bradley-Terry (bootstrap 95% intervals) with their Elo."""
    project = project_service.get(session=session, project_id=project_id)
    return service.model_leaderboard(session=session, project=project, rounds=rounds, seed=seed)


@router.get("/projects/{project_id}/consensus", response_model=list[PromptConsensus])
def consensus(
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    method: ConsensusMethod = ConsensusMethod.ranked_pairs,
    after: Annotated[AfterId, Query(description="prompt id to continue after")] = 0,
    limit: Limit = 100,
) -> object:
    """Consensus ranking and agreement of ranked prompts, in prompt id order (paged)."""
    project = project_service.get(session=session, project_id=project_id)
    out = []
    for labels, result in service.consensus_by_prompt(
        session=session,
        project=project,
        method=method,
        after=after,
    ):
        out.append(
            PromptConsensus(
                prompt_id=labels.prompt_id,
                ranking=list(result.ranking),
                tied=[list(g) for g in result.groups if len(g) > 1],
                unranked=list(result.unranked),
                agreement=result.agreement,
                rankings=result.n_rankings,
            )
        )
        if len(out) >= limit:
            break
    return out


@router.get("/projects/{project_id}/exclusions", response_model=list[ExclusionOut])
def list_exclusions(project_id: Id, session: SessionDep, _: AdminUser) -> object:
    """Labelers left out of this project's aggregates (global exclusions included)."""
    project_service.get(session=session, project_id=project_id)
    return service.list_exclusions(session=session, project_id=project_id)


@router.post("/projects/{project_id}/exclusions", response_model=ExclusionOut, status_code=201)
def exclude(project_id: Id, body: ExclusionIn, session: SessionDep, admin: AdminUser) -> object:
    """Leave a labeler out of this project's aggregates (or of all: `all_projects`)."""
    project_service.get(session=session, project_id=project_id)
    exclusion = service.exclude_labeler(
        session=session,
        user_id=body.user_id,
        project_id=None if body.all_projects else project_id,
        reason=body.reason,
        created_by=admin,
    )
    session.commit()
    return exclusion


@router.delete("/exclusions/{exclusion_id}", status_code=204)
def remove_exclusion(exclusion_id: Id, session: SessionDep, _: AdminUser) -> None:
    """Count the labeler in again."""
    service.remove_exclusion(session=session, exclusion_id=exclusion_id)
    session.commit()
