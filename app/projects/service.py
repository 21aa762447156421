"""Projects: create, find, change, and count progress."""

from functools import cache, partial
from typing import Any

from sqlalchemy import Boolean, Select, bindparam, case, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.http.bounds import MAX_ID
from app.labeling import judged, labels
from app.labeling.lease_rules import labels_wanted
from app.labeling.models import AssignmentStatus
from app.memory import Memory, after_commit
from app.projects import questions as question_defs
from app.projects.kinds import ProjectKind
from app.projects.models import Project, ProjectMember, Prompt, Response
from app.projects.schemas import ProjectCreate, ProjectStats, ProjectUpdate


def create(*, session: Session, data: ProjectCreate) -> Project:
    """Create a project (the caller commits); names are unique."""
    if session.scalar(select(Project.id).where(Project.name == data.name)) is not None:
        raise Conflict(f"a project named {data.name!r} exists already", field="name")
    project = Project(**data.model_dump() | {"questions": data.stored_questions()})
    session.add(project)
    session.flush()
    return project


def get(*, session: Session, project_id: int) -> Project:
    """The project with this id, or NotFound."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    return project


def get_for(*, session: Session, project_id: int, user: User) -> Project:
    """The project with this id as `user` may read it: NotFound, or Forbidden for a labeler
    who is not a member of a members-only project (admins read every project)."""
    project = get(session=session, project_id=project_id)
    ensure_can_label(session=session, project=project, user=user)
    return project


def get_by_ref(*, session: Session, ref: str | int) -> Project:
    """A project by id or by name (what the CLI's PROJECT argument takes)."""
    ref = str(ref)
    project = session.scalar(select(Project).where(Project.name == ref))
    if project is None and ref.isdigit():
        project = session.get(Project, int(ref))
    if project is None:
        raise NotFound(f"no project with id or name {ref!r}")
    return project


def list_projects(
    *, session: Session, include_archived: bool = False, for_user: User | None = None
) -> list[Project]:
    """Projects, oldest first; for a labeler, only those open to them."""
    query = select(Project).order_by(Project.id)
    if not include_archived:
        query = query.where(Project.is_archived.is_(False))
    if for_user is not None and not for_user.is_admin:
        members = select(ProjectMember.id).where(ProjectMember.project_id == Project.id)
        mine = members.where(ProjectMember.user_id == for_user.id)
        query = query.where(~exists(members) | exists(mine))
    return list(session.scalars(query))


def ensure_can_label(*, session: Session, project: Project, user: User) -> None:
    """Forbidden unless the project is open to this user (admins may always label)."""
    if user.is_admin:
        return
    members, mine = session.execute(
        select(
            func.count(ProjectMember.id),
            func.count(case((ProjectMember.user_id == user.id, 1))),
        ).where(ProjectMember.project_id == project.id)
    ).one()
    if members and not mine:
        raise Forbidden(f"you are not a member of project {project.name!r}")


LABELING_SETTINGS = (
    Project.name,
    Project.kind,
    Project.instructions,
    Project.k,
    Project.overlap,
    Project.lease_seconds,
    Project.rating_scale,
    Project.criteria,
    Project.strength_scale,
    Project.questions,
    Project.is_archived,
)
"""The project's settings a lease and a submit read: one list, so a new setting reaches the
lease, the submit's read and the lease a process remembers for its submit alike."""


def may_label(project_id: Any, user_id: Any, is_admin: Any) -> Any:
    """SQL: whether the user may label the project: an admin, a project without members, or one
    of its members. The arguments are columns or bind parameters (the lease reads it with the
    project's settings, a submit or a skip with the assignment it writes)."""
    members = select(func.count()).where(ProjectMember.project_id == project_id)
    mine = members.where(ProjectMember.user_id == user_id)
    return is_admin | (members.scalar_subquery() == 0) | (mine.scalar_subquery() > 0)


@cache
def labeling_query() -> Select[Any]:
    """One statement: the project's labeling settings, whether the user may label it
    (`allowed`) and whether it has gold items (`has_gold`); no row when the project does not
    exist. Built once; parameters from `labeling_parameters`."""
    allowed = may_label(
        Project.id, bindparam("p_user_id"), bindparam("p_is_admin", type_=Boolean())
    )
    has_gold = exists().where(Prompt.project_id == Project.id, Prompt.is_gold.is_(True))
    return select(
        Project.id,
        *LABELING_SETTINGS,
        Project.gold_rate,
        Project.order,
        Project.auto_hold,
        Project.hold_after_gold,
        Project.suggestions,
        allowed.label("allowed"),
        has_gold.label("has_gold"),
    ).where(Project.id == bindparam("p_project_id"))


def labeling_parameters(*, project_id: int, user: User) -> dict[str, Any]:
    """The parameters of `labeling_query` for this project and user."""
    return {"p_project_id": project_id, "p_user_id": user.id, "p_is_admin": user.is_admin}


def list_members(*, session: Session, project: Project) -> list[User]:
    """The labelers a project is restricted to (empty: open to all)."""
    query = (
        select(User)
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.email)
    )
    return list(session.scalars(query))


def add_member(*, session: Session, project: Project, user_id: int) -> None:
    """Allow a labeler on the project (the first member closes it to everyone else). Not a
    source annotator: it cannot sign in, so as the only member it would close the project to
    every person."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}", field="user_id")
    if user.source is not None:
        raise Invalid(
            f"{user.email} is a source annotator (labels imported from {user.source}): it "
            "cannot sign in or take tasks, so it cannot be a member",
            field="user_id",
        )
    exists_already = session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == project.id, ProjectMember.user_id == user_id
        )
    )
    if exists_already is None:
        session.add(ProjectMember(project_id=project.id, user_id=user_id))
        session.flush()


def remove_member(*, session: Session, project: Project, user_id: int) -> None:
    """Take a labeler off the project (their past labels stay)."""
    session.execute(
        delete(ProjectMember).where(
            ProjectMember.project_id == project.id, ProjectMember.user_id == user_id
        )
    )
    session.flush()


def update(*, session: Session, project: Project, data: ProjectUpdate) -> Project:
    """Change a project's settings; K and the scale are fixed once labels exist."""
    changes = data.model_dump(exclude_unset=True)
    if "questions" in changes:
        changes["questions"] = [q.model_dump(mode="json") for q in data.questions]
        problem = question_defs.check_kind(changes["questions"], project.kind)
        if problem:
            raise Invalid(problem, field="questions")
    if "name" in changes and changes["name"] != project.name:
        taken = session.scalar(select(Project.id).where(Project.name == changes["name"]))
        if taken is not None:
            raise Conflict(f"a project named {changes['name']!r} exists already", field="name")
    fixed = ("k", "rating_scale", "strength_scale")
    if set(fixed) & changes.keys() and has_labels(session=session, project=project):
        for field in fixed:
            if field in changes and changes[field] != getattr(project, field):
                raise Conflict(f"{field} cannot change once the project has labels", field=field)
    if project.kind == ProjectKind.ranking and changes.get("k", project.k) < 2:
        raise Invalid("a ranking project shows k ≥ 2 responses", field="k")
    _check_strength_scale(project, changes)
    recount = any(
        field in changes and changes[field] != getattr(project, field)
        for field in ("judge_accepts", "judge_fills")
    )
    for field, value in changes.items():
        setattr(project, field, value)
    session.flush()
    if recount:  # judge labels fill other overlap slots now (or none)
        judged.recount_project(session=session, project_id=project.id)
    after_commit(session, partial(Memory.project_changed, project_id=project.id))
    return project


def _check_strength_scale(project: Project, changes: dict[str, Any]) -> None:
    """A strength scale only on a ranking project that shows k = 2 responses."""
    scale = changes.get("strength_scale", project.strength_scale)
    if scale and (project.kind != ProjectKind.ranking or changes.get("k", project.k) != 2):
        field = "strength_scale" if "strength_scale" in changes else "k"
        raise Invalid("a strength scale needs a ranking project with k = 2", field=field)


def has_labels(*, session: Session, project: Project) -> bool:
    """Whether any labeler annotation exists in the project."""
    return labels.has_labeler_annotations(session=session, project_id=project.id)


def stats(*, session: Session, project: Project) -> ProjectStats:
    """Prompts, labels done and needed, complete prompts, skips, active labelers."""
    real = Prompt.is_gold.is_(False)  # gold items measure labelers; they are not the work
    prompts = session.scalar(select(func.count()).where(Prompt.project_id == project.id, real)) or 0
    done = labels.assignment_counts(session=session, project_id=project.id)
    wanted = labels_wanted(project.overlap, Prompt.extra_labels)
    complete, needed = session.execute(
        select(
            func.count(case((Prompt.done_count >= wanted, 1))),
            func.coalesce(
                func.sum(case((Prompt.retired_at.is_(None), wanted), else_=Prompt.done_count)), 0
            ),
        ).where(Prompt.project_id == project.id, real)
    ).one()
    labelers = labels.labeler_count(session=session, project_id=project.id)
    return ProjectStats(
        project_id=project.id,
        prompts=prompts,
        labels_done=done.get(AssignmentStatus.done, 0),
        labels_needed=needed,
        prompts_complete=complete or 0,
        skips=done.get(AssignmentStatus.skipped, 0),
        labelers=labelers or 0,
    )


def prompt_with_responses(*, session: Session, prompt_id: int) -> tuple[Prompt, list[Response]]:
    """A prompt and its responses in import order."""
    prompt = session.get(Prompt, prompt_id)
    if prompt is None:
        raise NotFound(f"no prompt {prompt_id}")
    responses = session.scalars(
        select(Response).where(Response.prompt_id == prompt_id).order_by(Response.position)
    )
    return prompt, list(responses)


def prompts_named(*, session: Session, ref: str, project_id: int | None = None) -> list[int]:
    """Ids of the prompts a typed reference names, in id order: the prompt with that row id
    (digits) and those with that external id, within `project_id` when it is given."""
    named = Prompt.external_id == ref
    if ref.isdigit() and int(ref) <= MAX_ID:
        named = or_(named, Prompt.id == int(ref))
    query = select(Prompt.id).where(named).order_by(Prompt.id)
    if project_id is not None:
        query = query.where(Prompt.project_id == project_id)
    return list(session.scalars(query))


def prompt_messages(*, session: Session, prompt_ids: list[int]) -> dict[int, list[dict]]:
    """prompt id -> its conversation, for the given prompts."""
    if not prompt_ids:
        return {}
    rows = session.execute(select(Prompt.id, Prompt.messages).where(Prompt.id.in_(prompt_ids)))
    return {prompt_id: messages for prompt_id, messages in rows}
