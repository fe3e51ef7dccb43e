//! Authorization, in one place. Every HTTP route names an [`Access`] rule that the server checks
//! before the handler runs, and handlers that act on one object ask [`may_manage_user`] and its
//! siblings. Anything not allowed here is denied.

use crate::account::{Role, RoleGrant, Scope, ScopeKind};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    User {
        id: i64,
        grants: Vec<RoleGrant>,
    },
    /// The `GRAPPE_ADMIN_TOKEN` of the running server: an administrator with no user row.
    AdminToken,
    /// A project's API key for the AI-as-a-Service gateway: it opens the gateway's routes, and
    /// nothing else, on its project's behalf.
    ProjectKey {
        key: i64,
        project: i64,
    },
}

/// The rule a route states about its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone, without logging in: public figures, health, the login form.
    Public,
    /// Any signed-in user; the handler narrows to the caller's own objects.
    SignedIn,
    /// Holders of this role globally (administrators always pass).
    GlobalRole(Role),
    /// A project's gateway key, and nothing else: the OpenAI-compatible routes under `/v1`.
    ProjectKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No valid credentials: 401, or a redirect to the login page.
    Unauthenticated,
    /// Valid credentials, not enough rights: 403.
    Forbidden,
}

impl Actor {
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::Anonymous | Actor::AdminToken | Actor::ProjectKey { .. } => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        match self {
            Actor::AdminToken => true,
            Actor::User { grants, .. } => {
                grants.iter().any(|grant| grant.role == Role::Admin && grant.scope == Scope::Global)
            }
            Actor::Anonymous | Actor::ProjectKey { .. } => false,
        }
    }

    /// Holds `role` over everything (administrators hold every role). A global grant of a role
    /// that is only ever over one object (stored before grants were checked) means nothing.
    pub fn has_global_role(&self, role: Role) -> bool {
        self.is_admin() || (role.may_be_global() && self.has_grant(role, &Scope::Global))
    }

    /// Holds `role` over `scope`, directly or globally (administrators hold every role).
    pub fn has_role_over(&self, role: Role, scope: &Scope) -> bool {
        self.has_global_role(role) || self.has_grant(role, scope)
    }

    fn has_grant(&self, role: Role, scope: &Scope) -> bool {
        match self {
            Actor::User { grants, .. } => grants.iter().any(|grant| grant.role == role && grant.scope == *scope),
            Actor::Anonymous | Actor::AdminToken | Actor::ProjectKey { .. } => false,
        }
    }
}

pub fn check(actor: &Actor, access: Access) -> Decision {
    match (access, actor) {
        // A gateway key opens the gateway, and the gateway takes nothing but a key.
        (Access::ProjectKey, Actor::ProjectKey { .. }) => Decision::Allow,
        (Access::ProjectKey, _) | (_, Actor::ProjectKey { .. }) => Decision::Unauthenticated,
        (Access::Public, _) => Decision::Allow,
        (_, Actor::Anonymous) => Decision::Unauthenticated,
        (Access::SignedIn, _) => Decision::Allow,
        (Access::GlobalRole(role), actor) if actor.has_global_role(role) => Decision::Allow,
        (Access::GlobalRole(_), _) => Decision::Forbidden,
    }
}

/// Reading or changing a user's account: the user itself, or an administrator.
pub fn may_manage_user(actor: &Actor, user_id: i64) -> bool {
    actor.is_admin() || actor.user_id() == Some(user_id)
}

/// Seeing and using a project (its jobs, logs, usage): its members, and administrators.
pub fn may_use_project(actor: &Actor, project_id: i64) -> bool {
    actor.has_role_over(Role::ProjectMember, &project(project_id))
}

fn project(project_id: i64) -> Scope {
    Scope::Object { kind: ScopeKind::Project, id: project_id }
}

/// Acting on every job of a project (cancelling it, writing its metrics): its coordinators and
/// administrators.
pub fn may_coordinate_project(actor: &Actor, project_id: i64) -> bool {
    actor.has_role_over(Role::ProjectCoordinator, &project(project_id))
}

/// Acting on one job: its owner among the project's members, the project's coordinators, and
/// administrators; as Slurm lets a user act on their own jobs, and an account coordinator on all.
pub fn may_act_on_job(actor: &Actor, project_id: i64, owner: Option<i64>) -> bool {
    may_coordinate_project(actor, project_id)
        || (owner.is_some() && actor.user_id() == owner && may_use_project(actor, project_id))
}

/// The projects whose objects the actor sees as a member, from its grants; `None`: every
/// project (administrators).
pub fn projects_used_by(actor: &Actor) -> Option<Vec<i64>> {
    match actor {
        _ if actor.is_admin() => None,
        Actor::User { grants, .. } => Some(
            grants
                .iter()
                .filter_map(|grant| match grant.scope {
                    Scope::Object { kind: ScopeKind::Project, id } if grant.role == Role::ProjectMember => Some(id),
                    _ => None,
                })
                .collect(),
        ),
        Actor::Anonymous | Actor::AdminToken | Actor::ProjectKey { .. } => Some(Vec::new()),
    }
}

/// Seeing a dataset (its page, versions, files, and reading it from a job): anyone if it is
/// public; else the members of its project, and administrators.
pub fn may_see_dataset(actor: &Actor, project_id: Option<i64>, public: bool) -> bool {
    public || may_push_dataset(actor, project_id)
}

/// Pushing versions of a dataset: the members of its project; the programme's own datasets (no
/// project) only administrators.
pub fn may_push_dataset(actor: &Actor, project_id: Option<i64>) -> bool {
    project_id.map_or(actor.is_admin(), |project_id| may_use_project(actor, project_id))
}

/// Creating a call for proposals: call managers over everything, and administrators.
pub fn may_create_call(actor: &Actor) -> bool {
    actor.has_global_role(Role::CallManager)
}

/// Managing one call (its applications, jurors, conflicts, decisions): its call managers and
/// administrators.
pub fn may_manage_call(actor: &Actor, call_id: i64) -> bool {
    actor.has_role_over(Role::CallManager, &Scope::Object { kind: ScopeKind::Call, id: call_id })
}

/// Acting for a company of IA Booster (diagnosing it, asking for support, reporting outcomes)
/// and reading its diagnostics: its members, and administrators.
pub fn may_act_for_company(actor: &Actor, company_id: i64) -> bool {
    actor.has_role_over(Role::CompanyMember, &Scope::Object { kind: ScopeKind::Organisation, id: company_id })
}

/// Reading a company's diagnostics: its members and the programme's staff (administrators, and
/// call managers over everything, who decide its support requests).
pub fn may_read_company(actor: &Actor, company_id: i64) -> bool {
    may_act_for_company(actor, company_id) || actor.has_global_role(Role::CallManager)
}

/// Creating a challenge: challenge organisers over everything, and administrators.
pub fn may_create_challenge(actor: &Actor) -> bool {
    actor.has_global_role(Role::ChallengeOrganiser)
}

/// Organising one challenge (its private board before the end, baselines, every team's
/// submissions): its creator, its organisers, and administrators.
pub fn may_organise_challenge(actor: &Actor, challenge_id: i64, created_by: Option<i64>) -> bool {
    actor.has_role_over(Role::ChallengeOrganiser, &Scope::Object { kind: ScopeKind::Challenge, id: challenge_id })
        || (created_by.is_some() && actor.user_id() == created_by)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(grants: &[(Role, Scope)]) -> Actor {
        let grants = grants.iter().map(|(role, scope)| RoleGrant { role: *role, scope: scope.clone() });
        Actor::User { id: 7, grants: grants.collect() }
    }

    #[test]
    fn deny_by_default() {
        let project = Scope::Object { kind: ScopeKind::Project, id: 3 };
        let cases = [
            (Actor::Anonymous, Access::Public, Decision::Allow),
            (Actor::Anonymous, Access::SignedIn, Decision::Unauthenticated),
            (Actor::Anonymous, Access::GlobalRole(Role::Admin), Decision::Unauthenticated),
            (user(&[]), Access::SignedIn, Decision::Allow),
            (user(&[]), Access::GlobalRole(Role::Admin), Decision::Forbidden),
            (user(&[(Role::ProjectMember, project)]), Access::GlobalRole(Role::ProjectMember), Decision::Forbidden),
            (user(&[(Role::CallManager, Scope::Global)]), Access::GlobalRole(Role::CallManager), Decision::Allow),
            (user(&[(Role::CallManager, Scope::Global)]), Access::GlobalRole(Role::Admin), Decision::Forbidden),
            (user(&[(Role::Admin, Scope::Global)]), Access::GlobalRole(Role::Juror), Decision::Allow),
            (Actor::AdminToken, Access::GlobalRole(Role::Admin), Decision::Allow),
            (Actor::ProjectKey { key: 1, project: 3 }, Access::ProjectKey, Decision::Allow),
            (Actor::ProjectKey { key: 1, project: 3 }, Access::Public, Decision::Unauthenticated),
            (Actor::ProjectKey { key: 1, project: 3 }, Access::SignedIn, Decision::Unauthenticated),
            (Actor::AdminToken, Access::ProjectKey, Decision::Unauthenticated),
            (user(&[(Role::Admin, Scope::Global)]), Access::ProjectKey, Decision::Unauthenticated),
            (Actor::Anonymous, Access::ProjectKey, Decision::Unauthenticated),
        ];
        for (actor, access, expected) in cases {
            assert_eq!(check(&actor, access), expected, "{actor:?} {access:?}");
        }
    }

    #[test]
    fn scoped_roles_reach_only_their_object() {
        let mine = Scope::Object { kind: ScopeKind::Project, id: 3 };
        let other = Scope::Object { kind: ScopeKind::Project, id: 4 };
        let actor = user(&[(Role::ProjectMember, mine.clone())]);
        assert!(actor.has_role_over(Role::ProjectMember, &mine));
        assert!(!actor.has_role_over(Role::ProjectMember, &other));
        assert!(!actor.has_role_over(Role::Juror, &mine));
    }

    #[test]
    fn an_admin_grant_scoped_to_an_object_is_not_admin() {
        let scoped = Scope::Object { kind: ScopeKind::Project, id: 3 };
        let actor = user(&[(Role::Admin, scoped)]);
        assert!(!actor.is_admin());
        assert_eq!(check(&actor, Access::GlobalRole(Role::Admin)), Decision::Forbidden);
        assert!(!may_manage_user(&actor, 8));
    }

    #[test]
    fn projects_are_for_their_members() {
        let member = user(&[(Role::ProjectMember, Scope::Object { kind: ScopeKind::Project, id: 3 })]);
        assert!(may_use_project(&member, 3));
        assert!(!may_use_project(&member, 4));
        assert!(may_use_project(&Actor::AdminToken, 4));
        assert!(!may_use_project(&user(&[(Role::Juror, Scope::Global)]), 3));
        assert!(!may_use_project(&Actor::Anonymous, 3));
    }

    #[test]
    fn users_manage_themselves_only() {
        assert!(may_manage_user(&user(&[]), 7));
        assert!(!may_manage_user(&user(&[]), 8));
        assert!(may_manage_user(&Actor::AdminToken, 8));
        assert!(!may_manage_user(&Actor::Anonymous, 7));
    }

    #[test]
    fn members_act_on_their_own_jobs_and_coordinators_on_all() {
        let mine = Scope::Object { kind: ScopeKind::Project, id: 3 };
        let member = Actor::User { id: 10, grants: vec![RoleGrant { role: Role::ProjectMember, scope: mine.clone() }] };
        let coordinator = Actor::User {
            id: 11,
            grants: vec![
                RoleGrant { role: Role::ProjectMember, scope: mine.clone() },
                RoleGrant { role: Role::ProjectCoordinator, scope: mine },
            ],
        };
        assert!(may_act_on_job(&member, 3, Some(10)));
        assert!(!may_act_on_job(&member, 3, Some(12)), "another member's job");
        assert!(!may_act_on_job(&member, 3, None), "a job of nobody (the demo's)");
        assert!(!may_act_on_job(&member, 4, Some(10)), "not a member there any more");
        assert!(may_act_on_job(&coordinator, 3, Some(12)));
        assert!(!may_act_on_job(&coordinator, 4, Some(12)));
        assert!(may_act_on_job(&Actor::AdminToken, 4, None));
        // A global grant of a role that only exists over one object means nothing.
        let global =
            Actor::User { id: 13, grants: vec![RoleGrant { role: Role::ProjectMember, scope: Scope::Global }] };
        assert!(!may_use_project(&global, 3));
    }

    #[test]
    fn private_datasets_are_their_projects_and_programme_datasets_are_admins() {
        let member = user(&[(Role::ProjectMember, project(3))]);
        let stranger = user(&[(Role::ProjectMember, project(4))]);
        let admin = user(&[(Role::Admin, Scope::Global)]);
        assert!(may_see_dataset(&Actor::Anonymous, Some(3), true));
        assert!(!may_see_dataset(&Actor::Anonymous, Some(3), false));
        assert!(may_see_dataset(&member, Some(3), false));
        assert!(!may_see_dataset(&stranger, Some(3), false));
        assert!(may_see_dataset(&admin, Some(3), false));
        assert!(may_push_dataset(&member, Some(3)));
        assert!(!may_push_dataset(&stranger, Some(3)));
        assert!(!may_push_dataset(&member, None), "programme datasets: administrators only");
        assert!(may_push_dataset(&Actor::AdminToken, None));
        assert_eq!(projects_used_by(&member), Some(vec![3]));
        assert_eq!(projects_used_by(&Actor::Anonymous), Some(vec![]));
        assert_eq!(projects_used_by(&admin), None);
    }
}
