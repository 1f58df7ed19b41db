//! Users, organizations, teams, grants, service accounts, tokens and
//! repository settings.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_auth::{password, Actions, ApiToken, Role, TokenScope};
use portcullis_meta::{now_ms, Account, Grant, StoredToken};
use portcullis_oci::RepositoryName;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{json_body, reply, to_json, ApiResult, Who};
use crate::access::{namespace_of, new_token, Need};
use crate::{Registry, RegistryError};

/// Account, organization and team names (see [`crate::check_account_name`]).
fn valid_name(name: &str) -> Result<(), RegistryError> {
    crate::check_account_name(name).map_err(RegistryError::Invalid)
}

#[cfg(test)]
mod name_tests {
    use super::valid_name;

    #[test]
    fn names_table() {
        for (name, ok) in [
            ("alice", true),
            ("acme-ci", true),
            ("a.b_c", true),
            ("system", false),
            ("portcullis", false),
            ("anonymous", false),
            ("portcullis2", true),
            ("Alice", false),
            ("acme/app", false),
            ("", false),
        ] {
            assert_eq!(valid_name(name).is_ok(), ok, "{name:?}");
        }
        assert!(valid_name(&"a".repeat(64)).is_ok());
        assert!(valid_name(&"a".repeat(65)).is_err());
    }
}

/// An account: a user, an organization or a service account.
#[derive(Serialize, ToSchema)]
pub(crate) struct AccountView {
    name: String,
    /// `user`, `org` or `service`.
    kind: String,
    /// A system administrator.
    admin: bool,
    /// The namespace owning a service account.
    owner: Option<String>,
    created_at: i64,
}

fn account_json(a: &Account) -> serde_json::Value {
    to_json(&AccountView {
        name: a.name.clone(),
        kind: a.kind.clone(),
        admin: a.admin,
        owner: a.owner.clone(),
        created_at: a.created_at,
    })
}

async fn must_exist(reg: &Registry, name: &str, kind: Option<&str>) -> Result<Account, RegistryError> {
    reg.meta
        .account(name)
        .await?
        .filter(|a| kind.is_none_or(|k| a.kind == k))
        .ok_or_else(|| RegistryError::Absent(format!("no such {}: {name}", kind.unwrap_or("account"))))
}

fn json_list<T>(items: &[T], render: fn(&T) -> serde_json::Value) -> serde_json::Value {
    serde_json::Value::Array(items.iter().map(render).collect())
}

fn done(deleted: bool, what: String) -> ApiResult {
    if deleted {
        Ok(reply(StatusCode::NO_CONTENT, json!(null)))
    } else {
        Err(RegistryError::Absent(what))
    }
}

/// Deletes an account and its namespace's repositories (see
/// `Meta::delete_account`), and forgets cached reads of those repositories.
async fn delete_account(reg: &Registry, name: &str, ev: portcullis_meta::AuditEvent, what: &str) -> ApiResult {
    let Some(repos) = reg.meta.delete_account(name, &ev).await? else {
        return Err(RegistryError::Absent(format!("no such {what}: {name}")));
    };
    for r in &repos {
        reg.invalidate(r);
    }
    Ok(reply(StatusCode::NO_CONTENT, json!(null)))
}

// ---- users ------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    /// Lowercase letters, digits and `.` `_` `-` separators; at most 64.
    #[schema(example = "alice")]
    name: String,
    /// At least 12 characters.
    password: String,
    /// A system administrator.
    #[serde(default)]
    admin: bool,
}

pub(crate) fn check_password(pw: &str) -> Result<(), RegistryError> {
    if pw.chars().count() < 12 {
        return Err(RegistryError::Invalid("passwords need at least 12 characters".into()));
    }
    Ok(())
}

/// argon2id off the async threads: it is deliberately slow.
async fn hash_password(pw: String) -> Result<String, RegistryError> {
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

async fn team_exists(reg: &Registry, org: &str, team: &str) -> Result<bool, RegistryError> {
    Ok(reg.meta.teams(org).await?.iter().any(|(t, _)| t == team))
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    responses((status = 200, description = "Every user", body = [AccountView])),
)]
pub(crate) async fn user_list(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let users = reg.meta.accounts("user", None).await?;
    Ok(reply(StatusCode::OK, json_list(&users, account_json)))
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = NewUser,
    responses((status = 201, description = "The user", body = AccountView)),
)]
pub(crate) async fn user_create(State(reg): State<Arc<Registry>>, who: Who, body: Bytes) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let u: NewUser = json_body(&body)?;
    valid_name(&u.name)?;
    check_password(&u.password)?;
    let hash = hash_password(u.password.clone()).await?;
    let account = Account {
        name: u.name.clone(),
        kind: "user".into(),
        password_hash: Some(hash),
        admin: u.admin,
        owner: None,
        created_at: now_ms(),
        password_changed_at: None,
    };
    let ev = who
        .actor
        .event("user.create")
        .detail(format!("{} admin={}", u.name, u.admin));
    reg.meta.create_account(&account, &ev).await?;
    Ok(reply(StatusCode::CREATED, account_json(&account)))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "A user's name")),
    responses((status = 200, description = "The user", body = AccountView)),
)]
pub(crate) async fn user_get(State(reg): State<Arc<Registry>>, who: Who, Path(name): Path<String>) -> ApiResult {
    who.need(&reg, Need::Account(&name)).await?;
    let a = must_exist(&reg, &name, Some("user")).await?;
    Ok(reply(StatusCode::OK, account_json(&a)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "A user's name")),
    responses((status = 204, description = "Deleted, with the repositories of its namespace")),
)]
pub(crate) async fn user_delete(State(reg): State<Arc<Registry>>, who: Who, Path(name): Path<String>) -> ApiResult {
    who.need(&reg, Need::System).await?;
    must_exist(&reg, &name, Some("user")).await?;
    let ev = who.actor.event("user.delete").detail(name.clone());
    delete_account(&reg, &name, ev, "user").await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPassword {
    /// At least 12 characters.
    password: String,
    /// The current password: needed unless a system administrator sets
    /// someone else's.
    old_password: Option<String>,
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{name}/password",
    tag = "users",
    params(("name" = String, Path, description = "A user's name")),
    request_body = NewPassword,
    responses((status = 204, description = "Changed: the user's refresh tokens are revoked, registry tokens issued before are void")),
)]
pub(crate) async fn user_password(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.need(&reg, Need::Account(&name)).await?;
    let p: NewPassword = json_body(&body)?;
    check_password(&p.password)?;
    let by_admin = match &who.caller {
        crate::access::Caller::Account(me) => me.account.admin && me.account.name != name,
        _ => false,
    };
    if !by_admin {
        // Checked as a login: throttled, audited, and a token is no password.
        let old = p
            .old_password
            .as_deref()
            .filter(|o| ApiToken::parse(o).is_none())
            .ok_or_else(|| RegistryError::Denied("changing a password needs the current one (old_password)".into()))?;
        crate::token::login(
            &reg,
            &name,
            old,
            who.actor.address.clone(),
            crate::token::LoginRecord::All,
        )
        .await
        .map_err(|e| match e {
            RegistryError::Unauthorized(_) => RegistryError::Denied("old_password is wrong".into()),
            other => other,
        })?;
    }
    let hash = hash_password(p.password).await?;
    let ev = who.actor.event("user.password").detail(name.clone());
    done(
        reg.meta.set_password(&name, &hash, &ev).await?,
        format!("no such user: {name}"),
    )
}

// ---- organizations and teams -------------------------------------------

/// A new organization, team or service account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Named {
    /// Lowercase letters, digits and `.` `_` `-` separators; at most 64.
    name: String,
}

/// A new organization.
#[derive(Serialize, ToSchema)]
pub(crate) struct OrgCreated {
    name: String,
    /// The members of its `owners` team.
    owners: Vec<String>,
}

/// An organization and its teams.
#[derive(Serialize, ToSchema)]
pub(crate) struct OrgView {
    name: String,
    teams: Vec<TeamView>,
}

/// A team and its members.
#[derive(Serialize, ToSchema)]
pub(crate) struct TeamView {
    name: String,
    /// Account names.
    members: Vec<String>,
}

/// A new team.
#[derive(Serialize, ToSchema)]
pub(crate) struct TeamCreated {
    org: String,
    name: String,
}

/// A team membership.
#[derive(Serialize, ToSchema)]
pub(crate) struct Membership {
    org: String,
    team: String,
    member: String,
}

/// A current public key of a team member.
#[derive(Serialize, ToSchema)]
pub(crate) struct TeamKeyView {
    id: String,
    account: String,
    pem: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs",
    tag = "organizations",
    request_body = Named,
    responses((status = 201, description = "The organization; its creator is its first owner", body = OrgCreated)),
)]
pub(crate) async fn org_create(State(reg): State<Arc<Registry>>, who: Who, body: Bytes) -> ApiResult {
    who.need(&reg, Need::Authenticated).await?;
    let Some(p) = reg.principal(&who.caller).await? else {
        return Err(RegistryError::Unauthorized("authentication required".into()));
    };
    if p.account.kind != "user" || !p.unlimited() {
        return Err(RegistryError::Denied(
            "organizations are created by users with a password login or an unlimited token".into(),
        ));
    }
    let o: Named = json_body(&body)?;
    valid_name(&o.name)?;
    let ev = who.actor.event("org.create").detail(o.name.clone());
    // Only a system administrator may give an existing namespace an owner.
    reg.meta
        .create_org(&o.name, &p.account.name, p.account.admin, &ev)
        .await?;
    let created = OrgCreated {
        name: o.name,
        owners: vec![p.account.name.clone()],
    };
    Ok(reply(StatusCode::CREATED, to_json(&created)))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name")),
    responses((status = 200, description = "The organization and its teams", body = OrgView)),
)]
pub(crate) async fn org_get(State(reg): State<Arc<Registry>>, who: Who, Path(org): Path<String>) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Read)).await?;
    let teams = org_teams(&reg, &org).await?;
    Ok(reply(StatusCode::OK, to_json(&OrgView { name: org, teams })))
}

/// The teams of an organization that exists, each with its members.
async fn org_teams(reg: &Registry, org: &str) -> Result<Vec<TeamView>, RegistryError> {
    must_exist(reg, org, Some("org")).await?;
    let teams = reg.meta.teams(org).await?;
    Ok(teams
        .into_iter()
        .map(|(name, members)| TeamView { name, members })
        .collect())
}

/// `GET /api/v1/orgs/ORG/teams`: the teams and their members, for whoever
/// may read the organization (as `GET /api/v1/orgs/ORG` shows them).
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/teams",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name")),
    responses((status = 200, description = "The teams, each with its members", body = [TeamView])),
)]
pub(crate) async fn team_list(State(reg): State<Arc<Registry>>, who: Who, Path(org): Path<String>) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Read)).await?;
    Ok(reply(StatusCode::OK, to_json(&org_teams(&reg, &org).await?)))
}

/// `GET /api/v1/orgs/ORG/teams/TEAM/members`: the team's member accounts,
/// by name.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/teams/{team}/members",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name"), ("team" = String, Path, description = "A team of the organization")),
    responses((status = 200, description = "The members' account names", body = [String])),
)]
pub(crate) async fn member_list(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Read)).await?;
    must_exist(&reg, &org, Some("org")).await?;
    let members = reg
        .meta
        .teams(&org)
        .await?
        .into_iter()
        .find(|(name, _)| *name == team)
        .map(|(_, members)| members)
        .ok_or_else(|| RegistryError::Absent(format!("no such team: {org}/{team}")))?;
    Ok(reply(StatusCode::OK, json!(members)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name")),
    responses((status = 204, description = "Deleted, with the repositories of its namespace")),
)]
pub(crate) async fn org_delete(State(reg): State<Arc<Registry>>, who: Who, Path(org): Path<String>) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Admin)).await?;
    must_exist(&reg, &org, Some("org")).await?;
    let ev = who.actor.event("org.delete").detail(org.clone());
    delete_account(&reg, &org, ev, "organization").await
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/teams",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name")),
    request_body = Named,
    responses((status = 201, description = "The team", body = TeamCreated)),
)]
pub(crate) async fn team_create(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(org): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Admin)).await?;
    must_exist(&reg, &org, Some("org")).await?;
    let t: Named = json_body(&body)?;
    valid_name(&t.name)?;
    let ev = who.actor.event("team.create").detail(format!("{org}/{}", t.name));
    reg.meta.create_team(&org, &t.name, &ev).await?;
    Ok(reply(StatusCode::CREATED, to_json(&TeamCreated { org, name: t.name })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/teams/{team}",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name"), ("team" = String, Path, description = "A team of the organization")),
    responses((status = 204, description = "Deleted (never the `owners` team)")),
)]
pub(crate) async fn team_delete(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Admin)).await?;
    if team == "owners" {
        return Err(RegistryError::Invalid("the owners team cannot be deleted".into()));
    }
    let ev = who.actor.event("team.delete").detail(format!("{org}/{team}"));
    done(
        reg.meta.delete_team(&org, &team, &ev).await?,
        format!("no such team: {org}/{team}"),
    )
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/teams/{team}/members/{account}",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name"), ("team" = String, Path, description = "A team of the organization"), ("account" = String, Path, description = "A user or service account")),
    responses((status = 200, description = "A member now", body = Membership)),
)]
pub(crate) async fn member_add(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((org, team, account)): Path<(String, String, String)>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Admin)).await?;
    let a = must_exist(&reg, &account, None).await?;
    if a.kind == "org" {
        return Err(RegistryError::Invalid("an organization cannot be a team member".into()));
    }
    if !team_exists(&reg, &org, &team).await? {
        return Err(RegistryError::Absent(format!("no such team: {org}/{team}")));
    }
    let ev = who
        .actor
        .event("team.member.add")
        .detail(format!("{org}/{team} {account}"));
    reg.meta.add_member(&org, &team, &account, &ev).await?;
    let membership = Membership {
        org,
        team,
        member: account,
    };
    Ok(reply(StatusCode::OK, to_json(&membership)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/teams/{team}/members/{account}",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name"), ("team" = String, Path, description = "A team of the organization"), ("account" = String, Path, description = "A member")),
    responses((status = 204, description = "Removed")),
)]
pub(crate) async fn member_remove(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((org, team, account)): Path<(String, String, String)>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&org, Role::Admin)).await?;
    let ev = who
        .actor
        .event("team.member.remove")
        .detail(format!("{org}/{team} {account}"));
    done(
        reg.meta.remove_member(&org, &team, &account, &ev).await?,
        format!("{account} is not in {org}/{team}"),
    )
}

// ---- grants -----------------------------------------------------------

/// A role on the namespace, or on one repository in it, for an account or
/// a team: name exactly one of `account` and `team`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGrant {
    /// A repository in the namespace (`acme/app`); without it, the whole
    /// namespace.
    repository: Option<String>,
    account: Option<String>,
    /// A team of the namespace's organization.
    team: Option<String>,
    /// `read` (pull), `write` (pull, push) or `admin` (also delete,
    /// settings, grants).
    #[schema(example = "write")]
    role: String,
}

/// A grant.
#[derive(Serialize, ToSchema)]
pub(crate) struct GrantView {
    id: String,
    namespace: String,
    repository: Option<String>,
    account: Option<String>,
    team: Option<String>,
    role: String,
    created_at: i64,
}

fn grant_json(g: &Grant) -> serde_json::Value {
    to_json(&GrantView {
        id: g.id.clone(),
        namespace: g.namespace.clone(),
        repository: g.repository.clone(),
        account: g.account.clone(),
        team: g.team.as_ref().map(|(_, t)| t.clone()),
        role: g.role.clone(),
        created_at: g.created_at,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/grants",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    responses((status = 200, description = "The grants in the namespace", body = [GrantView])),
)]
pub(crate) async fn grant_list(State(reg): State<Arc<Registry>>, who: Who, Path(ns): Path<String>) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    let grants = reg.meta.grants(&ns).await?;
    Ok(reply(StatusCode::OK, json_list(&grants, grant_json)))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/grants",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    request_body = NewGrant,
    responses((status = 201, description = "The grant", body = GrantView)),
)]
pub(crate) async fn grant_create(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(ns): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    let g: NewGrant = json_body(&body)?;
    let role: Role = g
        .role
        .parse()
        .map_err(|e: portcullis_auth::AuthError| RegistryError::Invalid(e.to_string()))?;
    if let Some(r) = &g.repository {
        r.parse::<RepositoryName>()?;
        if namespace_of(r) != ns {
            return Err(RegistryError::Invalid(format!("{r} is not in namespace {ns}")));
        }
    }
    match (&g.account, &g.team) {
        (Some(a), None) => {
            must_exist(&reg, a, None).await?;
        }
        (None, Some(t)) => {
            if !team_exists(&reg, &ns, t).await? {
                return Err(RegistryError::Absent(format!("no such team: {ns}/{t}")));
            }
        }
        _ => return Err(RegistryError::Invalid("name exactly one of account or team".into())),
    }
    let grant = Grant {
        id: ApiToken::generate().id,
        namespace: ns.clone(),
        repository: g.repository,
        account: g.account,
        team: g.team.map(|t| (ns.clone(), t)),
        role: role.as_str().into(),
        created_at: now_ms(),
    };
    let mut ev = who.actor.event("grant.create").detail(grant_json(&grant).to_string());
    ev.repository = grant.repository.clone();
    reg.meta.create_grant(&grant, &ev).await?;
    Ok(reply(StatusCode::CREATED, grant_json(&grant)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/grants/{id}",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it"), ("id" = String, Path, description = "The grant's id")),
    responses((status = 204, description = "Deleted")),
)]
pub(crate) async fn grant_delete(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    let found = reg.meta.grant(&id).await?.filter(|g| g.namespace == ns);
    let Some(g) = found else {
        return Err(RegistryError::Absent(format!("no such grant in {ns}: {id}")));
    };
    let ev = who.actor.event("grant.delete").detail(grant_json(&g).to_string());
    done(reg.meta.delete_grant(&id, &ev).await?, format!("no such grant: {id}"))
}

// ---- service accounts ----------------------------------------------------

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/service-accounts",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    responses((status = 200, description = "The namespace's service accounts", body = [AccountView])),
)]
pub(crate) async fn service_account_list(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(ns): Path<String>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    let list = reg.meta.accounts("service", Some(&ns)).await?;
    Ok(reply(StatusCode::OK, json_list(&list, account_json)))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/service-accounts",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    request_body = Named,
    responses((status = 201, description = "The service account, named `NS+NAME`", body = AccountView)),
)]
pub(crate) async fn service_account_create(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(ns): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    let owner = must_exist(&reg, &ns, None).await?;
    if owner.kind == "service" {
        return Err(RegistryError::Invalid(
            "service accounts cannot own service accounts".into(),
        ));
    }
    let s: Named = json_body(&body)?;
    valid_name(&s.name)?;
    let account = Account {
        name: format!("{ns}+{}", s.name),
        kind: "service".into(),
        password_hash: None,
        admin: false,
        owner: Some(ns.clone()),
        created_at: now_ms(),
        password_changed_at: None,
    };
    let ev = who.actor.event("service_account.create").detail(account.name.clone());
    reg.meta.create_account(&account, &ev).await?;
    Ok(reply(StatusCode::CREATED, account_json(&account)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/service-accounts/{name}",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it"), ("name" = String, Path, description = "The service account: `NAME` or `NS+NAME`")),
    responses((status = 204, description = "Deleted")),
)]
pub(crate) async fn service_account_delete(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    let full = if name.contains('+') {
        name
    } else {
        format!("{ns}+{name}")
    };
    let a = must_exist(&reg, &full, Some("service")).await?;
    if a.owner.as_deref() != Some(ns.as_str()) {
        return Err(RegistryError::Absent(format!(
            "no such service account in {ns}: {full}"
        )));
    }
    let ev = who.actor.event("service_account.delete").detail(full.clone());
    delete_account(&reg, &full, ev, "service account").await
}

// ---- tokens -------------------------------------------------------------

/// Who manages an account's tokens: a user themself, or the admins of the
/// namespace owning a service account.
async fn token_need(reg: &Registry, who: &Who, account: &str) -> Result<Account, RegistryError> {
    let found = reg.meta.account(account).await?;
    match found.as_ref().map(|a| (a.kind.as_str(), a.owner.clone())) {
        Some(("service", Some(owner))) => who.need(reg, Need::Namespace(&owner, Role::Admin)).await?,
        _ => who.need(reg, Need::Account(account)).await?,
    }
    found
        .filter(|a| a.kind != "org")
        .ok_or_else(|| RegistryError::Absent(format!("no such account: {account}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    #[schema(example = "ci")]
    name: String,
    /// `REPOSITORY-PATTERN:ACTIONS` (`acme/app-build:pull,push`,
    /// `acme/*:pull`); at least one with actions.
    #[schema(example = json!(["acme/app-build:pull,push"]))]
    scopes: Vec<String>,
    /// Days until it expires; at most 366.
    expires_in_days: Option<u32>,
}

/// An API token or OAuth2 refresh token, without its secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenView {
    id: String,
    account: String,
    name: String,
    /// `api` or `refresh`.
    kind: String,
    scopes: Vec<String>,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// A new API token with its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct NewTokenView {
    #[serde(flatten)]
    view: TokenView,
    /// `pct_<id>_<secret>`: send it as `Authorization: Bearer …`.
    token: String,
}

fn token_view(t: &StoredToken) -> TokenView {
    TokenView {
        id: t.id.clone(),
        account: t.account.clone(),
        name: t.name.clone(),
        kind: t.kind.clone(),
        scopes: t.scopes.split_whitespace().map(str::to_string).collect(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
    }
}

fn token_json(t: &StoredToken) -> serde_json::Value {
    to_json(&token_view(t))
}

#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/tokens",
    tag = "accounts",
    params(("account" = String, Path, description = "An account: a user, or a service account (`acme+ci`)")),
    responses((status = 200, description = "The account's API tokens and refresh tokens (never their secrets)", body = [TokenView])),
)]
pub(crate) async fn token_list(State(reg): State<Arc<Registry>>, who: Who, Path(account): Path<String>) -> ApiResult {
    token_need(&reg, &who, &account).await?;
    let list = reg.meta.tokens(&account).await?;
    Ok(reply(StatusCode::OK, json_list(&list, token_json)))
}

#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/tokens",
    tag = "accounts",
    params(("account" = String, Path, description = "An account: a user, or a service account (`acme+ci`)")),
    request_body = NewToken,
    responses((status = 201, description = "The token, with its secret (shown this once)", body = NewTokenView)),
)]
pub(crate) async fn token_create(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(account): Path<String>,
    body: Bytes,
) -> ApiResult {
    token_need(&reg, &who, &account).await?;
    let n: NewToken = json_body(&body)?;
    let scopes = n
        .scopes
        .iter()
        .map(|s| s.parse::<TokenScope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
    if scopes.is_empty() || scopes.iter().all(|s| s.actions == Actions::NONE) {
        return Err(RegistryError::Invalid(
            "a token needs at least one scope with actions".into(),
        ));
    }
    let days = n.expires_in_days.unwrap_or(90);
    if !(1..=366).contains(&days) {
        return Err(RegistryError::Invalid(
            "expires_in_days must be between 1 and 366".into(),
        ));
    }
    let (t, stored) = new_token(&account, &n.name, "api", &scopes, i64::from(days) * 86_400_000);
    let ev = who
        .actor
        .event("token.create")
        .detail(format!("{account} {} [{}]", t.id, stored.scopes));
    reg.meta.create_token(&stored, &ev).await?;
    let body = NewTokenView {
        view: token_view(&stored),
        token: t.reveal(),
    };
    Ok(reply(StatusCode::CREATED, to_json(&body)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{account}/tokens/{id}",
    tag = "accounts",
    params(("account" = String, Path, description = "An account: a user, or a service account (`acme+ci`)"), ("id" = String, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked")),
)]
pub(crate) async fn token_revoke(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult {
    token_need(&reg, &who, &account).await?;
    if reg.meta.token(&id).await?.is_none_or(|t| t.account != account) {
        return Err(RegistryError::Absent(format!("no such token for {account}: {id}")));
    }
    let ev = who.actor.event("token.revoke").detail(format!("{account} {id}"));
    done(
        reg.meta.revoke_token(&id, &ev).await?,
        format!("token {id} is already revoked"),
    )
}

// ---- signing keys ---------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    #[schema(example = "laptop")]
    name: String,
    /// An ECDSA P-256 public key in PEM, as `cosign generate-key-pair` writes.
    pem: String,
}

/// The stored form of an account's public key.
fn account_key(account: &str, name: String, public: &portcullis_sign::PublicKey) -> portcullis_meta::AccountKey {
    portcullis_meta::AccountKey {
        id: public.id.clone(),
        account: account.to_string(),
        pem: public.to_pem(),
        name,
        created_at: now_ms(),
        revoked_at: None,
    }
}

/// A public key of an account.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// SHA-256 of the key's DER form, hex.
    id: String,
    account: String,
    name: String,
    pem: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

fn key_json(k: &portcullis_meta::AccountKey) -> serde_json::Value {
    to_json(&KeyView {
        id: k.id.clone(),
        account: k.account.clone(),
        name: k.name.clone(),
        pem: k.pem.clone(),
        created_at: k.created_at,
        revoked_at: k.revoked_at,
    })
}

/// The public half of a server-side signing key.
#[derive(Serialize, ToSchema)]
pub(crate) struct SigningKeyView {
    key_id: String,
    pem: String,
}

/// `GET /api/v1/accounts/NAME/keys`: the account's public keys.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/keys",
    tag = "accounts",
    params(("account" = String, Path, description = "An account: a user, or a service account (`acme+ci`)")),
    responses((status = 200, description = "The account's public keys, revoked ones too", body = [KeyView])),
)]
pub(crate) async fn key_list(State(reg): State<Arc<Registry>>, who: Who, Path(account): Path<String>) -> ApiResult {
    token_need(&reg, &who, &account).await?;
    let list = reg.meta.keys_of(&account).await?;
    Ok(reply(StatusCode::OK, json_list(&list, key_json)))
}

/// Current (unrevoked) public keys one account may hold.
pub(crate) const MAX_KEYS_PER_ACCOUNT: usize = 16;

/// `POST /api/v1/accounts/NAME/keys`: registers a public key; signatures
/// it made count for the account (and its teams) until it is revoked.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/keys",
    tag = "accounts",
    params(("account" = String, Path, description = "An account: a user, or a service account (`acme+ci`)")),
    request_body = NewKey,
    responses((status = 201, description = "The key", body = KeyView)),
)]
pub(crate) async fn key_add(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(account): Path<String>,
    body: Bytes,
) -> ApiResult {
    token_need(&reg, &who, &account).await?;
    let k: NewKey = json_body(&body)?;
    let public = portcullis_sign::PublicKey::from_pem(&k.pem).map_err(|e| RegistryError::Invalid(e.to_string()))?;
    // Every signature check weighs the keys it may be asked about: keys are
    // not free to pile up.
    let current = reg
        .meta
        .keys_of(&account)
        .await?
        .iter()
        .filter(|k| k.revoked_at.is_none())
        .count();
    if current >= MAX_KEYS_PER_ACCOUNT {
        return Err(RegistryError::Denied(format!(
            "{account} has {current} current keys, the most an account may hold; revoke one first"
        )));
    }
    let key = account_key(&account, k.name, &public);
    let ev = who.actor.event("key.add").detail(format!("{account} {}", key.id));
    reg.meta.add_key(&key, &ev).await?;
    Ok(reply(StatusCode::CREATED, key_json(&key)))
}

/// `DELETE /api/v1/accounts/NAME/keys/ID`: its signatures stop counting now.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{account}/keys/{id}",
    tag = "accounts",
    params(("account" = String, Path, description = "An account: a user, or a service account (`acme+ci`)"), ("id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked: its signatures stop counting now")),
)]
pub(crate) async fn key_revoke(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult {
    token_need(&reg, &who, &account).await?;
    let ev = who.actor.event("key.revoke").detail(format!("{account} {id}"));
    done(
        reg.meta.revoke_key(&account, &id, &ev).await?,
        format!("no live key {id} of {account}"),
    )
}

/// An existing key for `POST …/signing-key`: a cosign key file and its password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportedKey {
    /// The key file `cosign generate-key-pair` writes (`cosign.key`).
    cosign_key: String,
    /// Its password (empty by default).
    #[serde(default)]
    password: String,
}

/// `POST /api/v1/accounts/NAME/signing-key`: a server-side signing key for
/// a service account, made here or imported from a cosign key file (body
/// `{"cosign_key": PEM, "password": …}`), sealed at rest; only its public
/// half ever leaves the server.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/signing-key",
    tag = "accounts",
    params(("account" = String, Path, description = "A service account")),
    request_body(content = Option<ImportedKey>, description = "Nothing (a key made here), or a cosign key file to import", content_type = "application/json"),
    responses((status = 201, description = "The key's public half", body = SigningKeyView)),
)]
pub(crate) async fn signing_key_create(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(account): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = token_need(&reg, &who, &account).await?;
    if a.kind != "service" {
        return Err(RegistryError::Invalid(
            "server-side signing keys belong to service accounts".into(),
        ));
    }
    let imported = match body.iter().all(u8::is_ascii_whitespace) || &body[..] == b"null" {
        true => None,
        false => Some(json_body::<ImportedKey>(&body)?),
    };
    let (key, sealed, name) = match imported {
        None => {
            let (key, sealed) = reg.new_sealed_key(&account)?;
            (key, sealed, "server-side signing key")
        }
        Some(k) => {
            let (key, sealed) = reg.import_sealed_key(&account, k.cosign_key, k.password).await?;
            (key, sealed, "server-side signing key (imported)")
        }
    };
    let public = account_key(&account, name.into(), &key.public);
    let ev = who
        .actor
        .event("signing_key.create")
        .detail(format!("{account} {}", public.id));
    reg.meta.put_signing_key(&public, &sealed, &ev).await?;
    let view = SigningKeyView {
        key_id: public.id,
        pem: public.pem,
    };
    Ok(reply(StatusCode::CREATED, to_json(&view)))
}

/// `GET /api/v1/orgs/ORG/teams/TEAM/keys`: the current public keys of the
/// team's members, for verifiers (`portcullis verify --team`). Public keys
/// are not secrets: any authenticated caller may read them.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/teams/{team}/keys",
    tag = "organizations",
    params(("org" = String, Path, description = "An organization's name"), ("team" = String, Path, description = "A team of the organization")),
    responses((status = 200, description = "The current public keys of the team's members", body = [TeamKeyView])),
)]
pub(crate) async fn team_keys(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult {
    who.need(&reg, Need::Authenticated).await?;
    must_exist(&reg, &org, Some("org")).await?;
    if !reg.meta.teams(&org).await?.iter().any(|(name, _)| *name == team) {
        return Err(RegistryError::Absent(format!("no team {org}/{team}")));
    }
    let keys = reg.meta.trusted_keys(&[format!("{org}/{team}")], &[]).await?;
    let keys: Vec<TeamKeyView> = keys
        .into_iter()
        .map(|(id, account, pem)| TeamKeyView { id, account, pem })
        .collect();
    Ok(reply(StatusCode::OK, to_json(&keys)))
}

/// `GET /api/v1/accounts/NAME/signing-key`: its public half.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/signing-key",
    tag = "accounts",
    params(("account" = String, Path, description = "A service account")),
    responses((status = 200, description = "The key's public half", body = SigningKeyView)),
)]
pub(crate) async fn signing_key_get(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(account): Path<String>,
) -> ApiResult {
    token_need(&reg, &who, &account).await?;
    let (id, _) = reg
        .meta
        .signing_key(&account)
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("{account} has no server-side signing key")))?;
    let pem = reg
        .meta
        .keys_of(&account)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .map(|k| k.pem)
        .unwrap_or_default();
    Ok(reply(StatusCode::OK, to_json(&SigningKeyView { key_id: id, pem })))
}

// ---- repositories -------------------------------------------------------

pub(crate) fn repo_name(name: &str) -> Result<RepositoryName, RegistryError> {
    Ok(name.trim_start_matches('/').parse::<RepositoryName>()?)
}

/// A repository's settings.
#[derive(Serialize, ToSchema)]
pub(crate) struct RepositoryView {
    name: String,
    /// `public` (anonymous pull) or `private`.
    visibility: String,
    scan_on_push: bool,
    /// Every tag immutable (cosign's signature tags grow, never move).
    immutable_tags: bool,
    /// Tags matching one of these globs are immutable.
    immutable_tag_patterns: Vec<String>,
    /// The repository's pull rule (`{}`: none).
    #[schema(value_type = portcullis_policy::PullRule)]
    pull_rule: serde_json::Value,
    created_at: i64,
    /// What the caller may do here (`GET` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_may: Option<CallerMay>,
}

/// What the caller may do in a repository.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallerMay {
    push: bool,
    delete: bool,
    admin: bool,
}

/// A repository's settings as the API shows them.
async fn repository_json(reg: &Registry, name: &RepositoryName) -> Result<RepositoryView, RegistryError> {
    let r = reg
        .meta
        .repository(name.as_str())
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("no such repository: {name}")))?;
    let scan_on_push = reg.meta.scan_on_push(name.as_str()).await?;
    let im = reg.meta.repository_immutability(name.as_str()).await?;
    let (pull_rule, _) = reg.meta.pull_rules(name.as_str()).await?;
    Ok(RepositoryView {
        name: r.name,
        visibility: r.visibility,
        scan_on_push,
        immutable_tags: im.immutable_tags,
        immutable_tag_patterns: im.immutable_tag_patterns,
        pull_rule: rule_json(&pull_rule),
        created_at: r.created_at,
        caller_may: None,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}",
    tag = "repositories",
    params(super::RepositoryPath),
    responses((status = 200, description = "The repository's settings, and what the caller may do there", body = RepositoryView)),
)]
pub(crate) async fn repository_get(reg: &Registry, who: &Who, name: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    let mut response = repository_json(reg, &name).await?;
    // What the caller may do here, so a client (the web UI) offers only that.
    let may = |actions| who.need(reg, Need::Repository(name.as_str(), actions));
    response.caller_may = Some(CallerMay {
        push: may(Actions::PUSH).await.is_ok(),
        delete: may(Actions::DELETE).await.is_ok(),
        admin: may(Actions::ALL).await.is_ok(),
    });
    Ok(reply(StatusCode::OK, to_json(&response)))
}

/// A stored pull rule as the API shows it (`{}` when there is none).
fn rule_json(stored: &str) -> serde_json::Value {
    serde_json::from_str(stored).unwrap_or(json!({}))
}

/// A pull rule as given, checked, and as it is stored (`{}` clears it):
/// every signer it names must exist now, and the rule is stamped with the
/// time it was saved, so a signer that later takes a deleted one's name is
/// not trusted (`pull.rs` `check_signed`).
/// The rule to store, stamped `saved_at` now, unless it is the rule
/// already stored (`stored`, JSON): then its stamp stays, so saving a
/// settings form that did not change the rule does not make a signer
/// re-created under an old name count again.
async fn pull_rule_text(
    reg: &Registry,
    rule: &portcullis_policy::PullRule,
    stored: &str,
) -> Result<String, RegistryError> {
    rule.check_valid().map_err(|e| RegistryError::Invalid(e.to_string()))?;
    if rule.is_empty() {
        return Ok(String::new());
    }
    if let Some(by) = &rule.require_signed_by {
        signers_exist(reg, by, "require_signed_by").await?;
    }
    if let Some(p) = &rule.require_provenance {
        signers_exist(reg, &p.signed_by, "require_provenance.signed_by").await?;
    }
    let mut stamped = rule.clone();
    let kept = serde_json::from_str::<portcullis_policy::PullRule>(stored)
        .ok()
        .filter(|old| {
            portcullis_policy::PullRule {
                saved_at: None,
                ..old.clone()
            } == *rule
        })
        .and_then(|old| old.saved_at);
    stamped.saved_at = Some(kept.unwrap_or_else(portcullis_meta::now_ms));
    Ok(serde_json::to_string(&stamped).expect("json"))
}

/// `Err(Invalid)` naming the teams and accounts of `by` that do not exist
/// (`what`: the rule's field): a rule may name only signers there are.
pub(crate) async fn signers_exist(
    reg: &Registry,
    by: &portcullis_policy::SignedBy,
    what: &str,
) -> Result<(), RegistryError> {
    let missing: Vec<String> = reg
        .meta
        .signers_created(&by.teams, &by.accounts)
        .await?
        .into_iter()
        .filter(|(_, created)| created.is_none())
        .map(|(signer, _)| signer)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(RegistryError::Invalid(format!(
        "{what} names {} that do{} not exist",
        missing.join(", "),
        if missing.len() == 1 { "es" } else { "" }
    )))
}

/// Any setting may be given alone; at least one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepositorySettings {
    /// `public` or `private`.
    visibility: Option<String>,
    scan_on_push: Option<bool>,
    immutable_tags: Option<bool>,
    /// Globs (`v*`, `release-*`).
    immutable_tag_patterns: Option<Vec<String>>,
    /// `{}` clears it.
    pull_rule: Option<portcullis_policy::PullRule>,
}

#[utoipa::path(
    put,
    path = "/api/v1/repositories/{name}",
    tag = "repositories",
    params(super::RepositoryPath),
    request_body = RepositorySettings,
    responses((status = 200, description = "The settings now (without `caller_may`)", body = RepositoryView)),
)]
pub(crate) async fn repository_update(reg: &Registry, who: &Who, name: &str, body: &[u8]) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    let s: RepositorySettings = json_body(body)?;
    if s.visibility.is_none()
        && s.scan_on_push.is_none()
        && s.immutable_tags.is_none()
        && s.immutable_tag_patterns.is_none()
        && s.pull_rule.is_none()
    {
        return Err(RegistryError::Invalid(
            "give visibility, scan_on_push, immutable_tags, immutable_tag_patterns or pull_rule".into(),
        ));
    }
    let pull_rule = match &s.pull_rule {
        Some(rule) => Some(pull_rule_text(reg, rule, &reg.meta.pull_rules(name.as_str()).await?.0).await?),
        None => None,
    };
    if let Some(v) = &s.visibility {
        if !["public", "private"].contains(&v.as_str()) {
            return Err(RegistryError::Invalid("visibility is public or private".into()));
        }
    }
    if let Some(p) = &s.immutable_tag_patterns {
        portcullis_policy::parse_patterns(p, "").map_err(|e| RegistryError::Invalid(e.to_string()))?;
    }
    let mut detail = Vec::new();
    if let Some(v) = &s.visibility {
        detail.push(format!("visibility={v}"));
    }
    if let Some(on) = s.scan_on_push {
        detail.push(format!("scan_on_push={on}"));
    }
    if let Some(all) = s.immutable_tags {
        detail.push(format!("immutable_tags={all}"));
    }
    if let Some(p) = &s.immutable_tag_patterns {
        detail.push(format!(
            "immutable_tag_patterns={}",
            serde_json::to_string(p).expect("json")
        ));
    }
    if let Some(rule) = &pull_rule {
        detail.push(format!("pull_rule={rule}"));
    }
    let change = portcullis_meta::RepositorySettingsChange {
        visibility: s.visibility,
        scan_on_push: s.scan_on_push,
        immutable_tags: s.immutable_tags,
        immutable_tag_patterns: s.immutable_tag_patterns,
        pull_rule,
    };
    let event = who
        .actor
        .event("repository.update")
        .repository(name.as_str())
        .detail(detail.join(" "));
    reg.meta
        .update_repository_settings(name.as_str(), &change, &event)
        .await?;
    reg.invalidate(name.as_str());
    reg.pull_rules.clear();
    Ok(reply(StatusCode::OK, to_json(&repository_json(reg, &name).await?)))
}

/// Any setting may be given alone; at least one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespaceSettings {
    /// Tag globs immutable in every repository of the namespace.
    immutable_tag_patterns: Option<Vec<String>>,
    /// The namespace's half of every repository's pull rule (`{}` clears it).
    pull_rule: Option<portcullis_policy::PullRule>,
    /// Repositories (name patterns within the namespace) that only
    /// promotions and signatures write to.
    promotion_only: Option<Vec<String>>,
    /// Make the namespace a pull-through cache of an upstream registry's
    /// namespace (`{}`: no longer one; what it cached stays).
    proxy: Option<ProxySettings>,
}

/// A pull-through cache: `NS/REPO:TAG` is served from
/// `NAMESPACE/REPO:TAG` on the registry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxySettings {
    /// The upstream registry (`/api/v1/registries`); required unless clearing.
    registry: Option<String>,
    /// The namespace on the upstream (`library`); absent or empty: its top level.
    namespace: Option<String>,
    /// How long a tag's upstream digest is believed before it is asked
    /// again (a `HEAD`); default 300, at most 604800.
    ttl_secs: Option<u64>,
    /// The bytes the cached images may declare together; past it the least
    /// recently pulled are evicted. Absent or 0: no limit.
    max_bytes: Option<u64>,
    /// Anonymous callers may pull (and so fill the cache); default false.
    public: Option<bool>,
}

/// A namespace's pull-through cache settings, and the bytes its cached
/// images declare now.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProxyView {
    registry: String,
    namespace: String,
    ttl_secs: u64,
    /// `null`: no limit.
    max_bytes: Option<u64>,
    public: bool,
    used_bytes: u64,
}

/// A namespace's settings.
#[derive(Serialize, ToSchema)]
pub(crate) struct NamespaceSettingsView {
    namespace: String,
    immutable_tag_patterns: Vec<String>,
    /// `{}`: none.
    #[schema(value_type = portcullis_policy::PullRule)]
    pull_rule: serde_json::Value,
    /// Name patterns of the repositories only promotions write images to.
    promotion_only: Vec<String>,
    /// `null`: the namespace is no pull-through cache.
    proxy: Option<ProxyView>,
}

async fn namespace_json(reg: &Registry, ns: &str) -> ApiResult {
    let patterns = reg.meta.namespace_immutability(ns).await?;
    let pull_rule = reg.meta.namespace_pull_rule(ns).await?;
    let promotion_only = reg.meta.namespace_promotion_only(ns).await?;
    let proxy = match reg.meta.proxy_namespace(ns).await? {
        None => None,
        Some(p) => Some(ProxyView {
            used_bytes: reg.meta.proxy_usage(ns).await?.max(0) as u64,
            registry: p.registry,
            namespace: p.upstream_namespace,
            ttl_secs: p.ttl_secs.max(0) as u64,
            max_bytes: (p.max_bytes > 0).then_some(p.max_bytes as u64),
            public: p.public,
        }),
    };
    let view = NamespaceSettingsView {
        namespace: ns.to_string(),
        immutable_tag_patterns: patterns,
        pull_rule: rule_json(&pull_rule),
        promotion_only,
        proxy,
    };
    Ok(reply(StatusCode::OK, to_json(&view)))
}

/// `GET /api/v1/namespaces/NS/settings`.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/settings",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    responses((status = 200, description = "The namespace's settings", body = NamespaceSettingsView)),
)]
pub(crate) async fn namespace_settings_get(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(ns): Path<String>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Read)).await?;
    must_exist(&reg, &ns, None).await?;
    namespace_json(&reg, &ns).await
}

/// `PUT /api/v1/namespaces/NS/settings`: tag patterns immutable in every
/// repository of the namespace.
#[utoipa::path(
    put,
    path = "/api/v1/namespaces/{ns}/settings",
    tag = "namespaces",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    request_body = NamespaceSettings,
    responses((status = 200, description = "The settings now", body = NamespaceSettingsView)),
)]
pub(crate) async fn namespace_settings_update(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(ns): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    must_exist(&reg, &ns, None).await?;
    let s: NamespaceSettings = json_body(&body)?;
    if s.immutable_tag_patterns.is_none() && s.pull_rule.is_none() && s.promotion_only.is_none() && s.proxy.is_none() {
        return Err(RegistryError::Invalid(
            "give immutable_tag_patterns, pull_rule, promotion_only or proxy".into(),
        ));
    }
    let proxy = match &s.proxy {
        // A proxy spends an upstream registry's credentials, which belong
        // to the whole registry, and may open what they reach to anyone
        // (`public`): a system administrator's decision, not a namespace's.
        Some(p) => {
            who.need(&reg, Need::System)
                .await
                .map_err(|_| RegistryError::Denied("proxy: only a system administrator may set it".into()))?;
            Some(proxy_setting(&reg, &ns, p).await?)
        }
        None => None,
    };
    if let Some(patterns) = &s.promotion_only {
        portcullis_policy::parse_patterns(patterns, "")
            .map_err(|e| RegistryError::Invalid(format!("promotion_only: {e}")))?;
    }
    let pull_rule = match &s.pull_rule {
        Some(rule) => Some(pull_rule_text(&reg, rule, &reg.meta.namespace_pull_rule(&ns).await?).await?),
        None => None,
    };
    if let Some(patterns) = &s.immutable_tag_patterns {
        portcullis_policy::parse_patterns(patterns, "").map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let ev = who.actor.event("namespace.update").detail(format!(
            "{ns} immutable_tag_patterns={}",
            serde_json::to_string(patterns).expect("json")
        ));
        reg.meta.set_namespace_immutability(&ns, patterns, &ev).await?;
    }
    if let Some(rule) = &pull_rule {
        let ev = who
            .actor
            .event("namespace.update")
            .detail(format!("{ns} pull_rule={rule}"));
        reg.meta.set_namespace_pull_rule(&ns, rule, &ev).await?;
        reg.pull_rules.clear();
    }
    if let Some(patterns) = &s.promotion_only {
        let ev = who.actor.event("namespace.update").detail(format!(
            "{ns} promotion_only={}",
            serde_json::to_string(patterns).expect("json")
        ));
        reg.meta.set_namespace_promotion_only(&ns, patterns, &ev).await?;
    }
    match proxy {
        None => {}
        Some(None) => {
            let ev = who.actor.event("namespace.update").detail(format!("{ns} proxy=none"));
            reg.meta.clear_proxy_namespace(&ns, &ev).await?;
        }
        Some(Some(p)) => {
            let ev = who.actor.event("namespace.update").detail(format!(
                "{ns} proxy={}",
                json!({"registry": p.registry, "namespace": p.upstream_namespace, "ttl_secs": p.ttl_secs,
                       "max_bytes": p.max_bytes, "public": p.public})
            ));
            reg.meta.set_proxy_namespace(&p, &ev).await.map_err(|e| match e {
                portcullis_meta::MetaError::Missing(_) => {
                    RegistryError::Invalid(format!("registry {} does not exist", p.registry))
                }
                e => e.into(),
            })?;
        }
    }
    if s.proxy.is_some() {
        reg.forget_proxy(&ns);
    }
    namespace_json(&reg, &ns).await
}

/// The proxy settings asked for, checked: `None` clears them.
async fn proxy_setting(
    reg: &Registry,
    ns: &str,
    p: &ProxySettings,
) -> Result<Option<portcullis_meta::ProxyNamespace>, RegistryError> {
    let Some(registry) = p.registry.as_deref() else {
        if p.namespace.is_some() || p.ttl_secs.is_some() || p.max_bytes.is_some() || p.public.is_some() {
            return Err(RegistryError::Invalid(
                "proxy: give the registry (or {} to make the namespace no proxy)".into(),
            ));
        }
        return Ok(None);
    };
    if reg.meta.upstream_registry(registry).await?.is_none() {
        return Err(RegistryError::Invalid(format!(
            "proxy: registry {registry} does not exist (POST /api/v1/registries first)"
        )));
    }
    let upstream_namespace = p.namespace.clone().unwrap_or_default();
    if !upstream_namespace.is_empty() && format!("{upstream_namespace}/x").parse::<RepositoryName>().is_err() {
        return Err(RegistryError::Invalid(format!(
            "proxy: namespace {upstream_namespace:?} is not a repository name prefix"
        )));
    }
    let ttl_secs = p.ttl_secs.unwrap_or(crate::proxy::DEFAULT_TTL_SECS);
    if ttl_secs > crate::proxy::MAX_TTL_SECS {
        return Err(RegistryError::Invalid(format!(
            "proxy: ttl_secs is at most {}",
            crate::proxy::MAX_TTL_SECS
        )));
    }
    let max_bytes = i64::try_from(p.max_bytes.unwrap_or(0))
        .map_err(|_| RegistryError::Invalid("proxy: max_bytes is too large".into()))?;
    Ok(Some(portcullis_meta::ProxyNamespace {
        namespace: ns.to_string(),
        registry: registry.to_string(),
        upstream_namespace,
        ttl_secs: ttl_secs as i64,
        max_bytes,
        public: p.public.unwrap_or(false),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/repositories/{name}",
    tag = "repositories",
    params(super::RepositoryPath),
    responses((status = 204, description = "Deleted, with its tags and manifests")),
)]
pub(crate) async fn repository_delete(reg: &Registry, who: &Who, name: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    // A pull-through cache is purged by its namespace's administrators only.
    if let Some(p) = reg.proxy_of(name.as_str()).await? {
        if who.need(reg, Need::Namespace(&p.namespace, Role::Admin)).await.is_err() {
            return Err(crate::proxy::refusal(&p));
        }
    }
    let ev = who.actor.event("repository.delete").repository(name.as_str());
    let deleted = reg.meta.delete_repository(name.as_str(), &ev).await?;
    reg.invalidate(name.as_str());
    done(deleted, format!("no such repository: {name}"))
}
