//! Organisations, users and role grants.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("`{field}` {problem}")]
    Field { field: &'static str, problem: String },
}

impl InvalidInput {
    pub fn field(field: &'static str, problem: impl Into<String>) -> InvalidInput {
        InvalidInput::Field { field, problem: problem.into() }
    }
}

/// A lower-cased e-mail address with one `@`, a local part and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Email, InvalidInput> {
        let email = raw.trim().to_lowercase();
        let bad = |problem: &str| Err(InvalidInput::field("email", problem));
        if email.len() > Email::MAX_LEN {
            return bad("is longer than 254 characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return bad("must contain `@`");
        };
        if local.is_empty() || domain.contains('@') {
            return bad("must be of the form name@domain");
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return bad("must have a dotted domain");
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("must not contain spaces");
        }
        if !email.is_ascii() {
            return bad("must be written in ASCII letters (an internationalised domain in its xn-- form)");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters that reorder or hide text: bidirectional controls, zero-width space, word joiner
/// and byte-order mark (the zero-width joiners, which some scripts need, are kept).
pub fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Two scripts a name mixes, if it does: letters of Common and Inherited (digits, punctuation,
/// combining accents) go with any; Han goes with Japanese kana and with Hangul.
fn mixed_scripts(name: &str) -> Option<(&'static str, &'static str)> {
    use unicode_script::{Script, UnicodeScript};
    let mut seen: Vec<Script> = Vec::new();
    for c in name.chars() {
        let script = c.script();
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) || seen.contains(&script) {
            continue;
        }
        seen.push(script);
    }
    let east_asian =
        |script: &Script| matches!(script, Script::Han | Script::Hiragana | Script::Katakana | Script::Hangul);
    let mixes = seen.len() > 1
        && !(seen.iter().all(east_asian)
            && !(seen.contains(&Script::Hangul)
                && seen.iter().any(|s| matches!(s, Script::Hiragana | Script::Katakana))));
    mixes.then(|| (seen[0].full_name(), seen[1].full_name()))
}

/// A person's or organisation's display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 200;

    /// Trimmed and NFKC-normalised (compatibility forms folded: full-width letters, ligatures);
    /// refused with control characters, direction overrides or invisible characters, or when it
    /// mixes scripts (a Cyrillic `а` among Latin letters), Japanese and Korean excepted.
    pub fn parse(field: &'static str, raw: &str) -> Result<DisplayName, InvalidInput> {
        use unicode_normalization::UnicodeNormalization;
        let normalised: String = raw.nfkc().collect();
        let name = normalised.trim();
        if name.is_empty() {
            return Err(InvalidInput::field(field, "must not be empty"));
        }
        if name.chars().count() > DisplayName::MAX_CHARS {
            return Err(InvalidInput::field(field, "is longer than 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput::field(field, "must not contain control characters"));
        }
        if let Some(c) = name.chars().find(|c| is_bidi_or_invisible(*c)) {
            return Err(InvalidInput::field(
                field,
                format!("must not contain U+{:04X} (a direction override or an invisible character)", c as u32),
            ));
        }
        if let Some((a, b)) = mixed_scripts(name) {
            return Err(InvalidInput::field(field, format!("mixes scripts ({a} and {b}): write it in one")));
        }
        Ok(DisplayName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as the user chose it: 10 to 1024 characters. Never logged, never stored.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(raw: &str) -> Result<Password, InvalidInput> {
        if raw.chars().count() < Password::MIN_CHARS {
            return Err(InvalidInput::field("password", "must have at least 10 characters"));
        }
        if raw.len() > Password::MAX_BYTES {
            return Err(InvalidInput::field("password", "is longer than 1024 bytes"));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Declares a closed set of names with `as_str`, `ALL` and `FromStr`, so the database, the API and
/// the CLI share one spelling.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(raw: &str) -> Result<$name, InvalidInput> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidInput::field(
                        $what,
                        format!("must be one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use named_enum;

named_enum!(
    /// What an organisation is; companies carry a size class.
    OrganisationKind, "kind" {
        University => "university",
        Lab => "lab",
        Company => "company",
        PublicBody => "public_body",
    }
);

named_enum!(
    /// The European size classes that decide, for example, who may apply to IA Booster.
    SizeClass, "size_class" {
        Sme => "sme",
        Eti => "eti",
        Large => "large",
    }
);

named_enum!(
    /// A role; a grant gives it over one object (a call, a project, a challenge) or globally.
    Role, "role" {
        Admin => "admin",
        ProgrammeManager => "programme_manager",
        CallManager => "call_manager",
        Juror => "juror",
        Applicant => "applicant",
        ProjectMember => "project_member",
        ProjectCoordinator => "project_coordinator",
        ChallengeOrganiser => "challenge_organiser",
        Participant => "participant",
        CompanyMember => "company_member",
    }
);

/// An organisation's kind with its size class where the kind has one: a company must say its
/// size, nothing else may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrganisationProfile {
    kind: OrganisationKind,
    size_class: Option<SizeClass>,
}

impl OrganisationProfile {
    pub fn parse(kind: &str, size_class: Option<&str>) -> Result<OrganisationProfile, InvalidInput> {
        let kind: OrganisationKind = kind.parse()?;
        let size_class = size_class.map(str::parse::<SizeClass>).transpose()?;
        match (kind, size_class) {
            (OrganisationKind::Company, None) => Err(InvalidInput::field("size_class", "is required for a company")),
            (OrganisationKind::Company, some) => Ok(OrganisationProfile { kind, size_class: some }),
            (_, Some(_)) => Err(InvalidInput::field("size_class", "applies to companies only")),
            (_, None) => Ok(OrganisationProfile { kind, size_class: None }),
        }
    }

    pub fn kind(self) -> OrganisationKind {
        self.kind
    }

    pub fn size_class(self) -> Option<SizeClass> {
        self.size_class
    }
}

/// What a grant is over: everything, or one object named by kind and id (`project:12`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    Object { kind: ScopeKind, id: i64 },
}

named_enum!(
    /// The kinds of object a role can be scoped to.
    ScopeKind, "scope" {
        Call => "call",
        Project => "project",
        Challenge => "challenge",
        Organisation => "organisation",
    }
);

impl Scope {
    /// `""` or `global` for global; `kind:id` for one object.
    pub fn parse(raw: &str) -> Result<Scope, InvalidInput> {
        let raw = raw.trim();
        if raw.is_empty() || raw == "global" {
            return Ok(Scope::Global);
        }
        let (kind, id) =
            raw.split_once(':').ok_or_else(|| InvalidInput::field("scope", "must be `global` or `kind:id`"))?;
        let kind: ScopeKind = kind.parse()?;
        let id: i64 = id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| InvalidInput::field("scope", "id must be a positive integer"))?;
        Ok(Scope::Object { kind, id })
    }

    /// The two columns a grant is stored in: `("", 0)` for global.
    pub fn to_columns(&self) -> (&'static str, i64) {
        match self {
            Scope::Global => ("", 0),
            Scope::Object { kind, id } => (kind.as_str(), *id),
        }
    }

    pub fn from_columns(kind: &str, id: i64) -> Result<Scope, InvalidInput> {
        if kind.is_empty() {
            return Ok(Scope::Global);
        }
        Ok(Scope::Object { kind: kind.parse()?, id })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Object { kind, id } => write!(f, "{kind}:{id}"),
        }
    }
}

/// Where a role may be granted: over everything, over one object of a kind, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    GlobalOnly,
    ObjectOnly(ScopeKind),
    Either(ScopeKind),
}

impl Role {
    /// Where this role may be granted: an administrator or a programme manager (who records
    /// the programme's payments) is one everywhere; a project member,
    /// coordinator, juror or participant only of one project, call or challenge; a call
    /// manager, applicant or challenge organiser either.
    pub fn reach(self) -> Reach {
        match self {
            Role::Admin | Role::ProgrammeManager => Reach::GlobalOnly,
            Role::CallManager | Role::Applicant => Reach::Either(ScopeKind::Call),
            Role::Juror => Reach::ObjectOnly(ScopeKind::Call),
            Role::ProjectMember | Role::ProjectCoordinator => Reach::ObjectOnly(ScopeKind::Project),
            Role::ChallengeOrganiser => Reach::Either(ScopeKind::Challenge),
            Role::Participant => Reach::ObjectOnly(ScopeKind::Challenge),
            // IA Booster: who may read and act for a company (its diagnostics, requests, outcomes).
            Role::CompanyMember => Reach::ObjectOnly(ScopeKind::Organisation),
        }
    }

    /// Whether a global grant of this role means anything.
    pub fn may_be_global(self) -> bool {
        !matches!(self.reach(), Reach::ObjectOnly(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub role: Role,
    pub scope: Scope,
}

impl RoleGrant {
    /// A grant as a caller asks for it, within its role's [`Reach`]: no scope means global,
    /// which only some roles may be.
    pub fn parse(role: &str, scope: &str) -> Result<RoleGrant, InvalidInput> {
        let role: Role = role.parse()?;
        let scope = Scope::parse(scope)?;
        let object_kind = match &scope {
            Scope::Global => None,
            Scope::Object { kind, .. } => Some(*kind),
        };
        match (role.reach(), object_kind) {
            (Reach::GlobalOnly, Some(_)) => {
                Err(InvalidInput::field("scope", format!("{role} is a global role; it cannot be scoped to an object")))
            }
            (Reach::ObjectOnly(kind), None) => Err(InvalidInput::field(
                "scope",
                format!("{role} is granted over one {kind}: give a scope such as `{kind}:12`"),
            )),
            (Reach::ObjectOnly(kind) | Reach::Either(kind), Some(other)) if other != kind => {
                Err(InvalidInput::field("scope", format!("{role} is granted over a {kind}, not a {other}")))
            }
            _ => Ok(RoleGrant { role, scope }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let ok = |raw: &str, expected: &str| assert_eq!(Email::parse(raw).unwrap().as_str(), expected);
        let err = |raw: &str| assert!(Email::parse(raw).is_err(), "{raw} should be refused");
        ok("  Ada@Example.ORG ", "ada@example.org");
        ok("a.b+c@lab.cnrs.fr", "a.b+c@lab.cnrs.fr");
        err("");
        err("no-at.example.org");
        err("@example.org");
        err("a@b@example.org");
        err("a@localhost");
        err("a b@example.org");
        err(&format!("{}@example.org", "a".repeat(250)));
    }

    #[test]
    fn passwords_have_bounds_and_hide_in_debug() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        let password = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{password:?}"), "Password(..)");
    }

    #[test]
    fn organisation_profiles() {
        assert!(OrganisationProfile::parse("company", Some("sme")).is_ok());
        assert!(OrganisationProfile::parse("company", None).is_err());
        assert!(OrganisationProfile::parse("lab", Some("sme")).is_err());
        assert!(OrganisationProfile::parse("university", None).is_ok());
        assert!(OrganisationProfile::parse("castle", None).is_err());
    }

    #[test]
    fn scopes_round_trip() {
        for raw in ["global", "project:12", "call:1", "challenge:7", "organisation:3"] {
            let scope = Scope::parse(raw).unwrap();
            assert_eq!(scope.to_string(), raw);
            let (kind, id) = scope.to_columns();
            assert_eq!(Scope::from_columns(kind, id).unwrap(), scope);
        }
        for raw in ["project", "project:0", "project:-1", "planet:3", "project:x"] {
            assert!(Scope::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn admin_grants_are_global_only() {
        assert!(RoleGrant::parse("admin", "global").is_ok());
        assert!(RoleGrant::parse("admin", "project:3").is_err());
        assert_eq!(RoleGrant::parse("juror", "call:2").unwrap().scope, Scope::Object { kind: ScopeKind::Call, id: 2 });
        let error = RoleGrant::parse("project_member", "").unwrap_err().to_string();
        assert!(error.contains("project_member is granted over one project"), "{error}");
        assert!(RoleGrant::parse("project_coordinator", "project:4").is_ok());
        assert!(RoleGrant::parse("project_member", "call:4").unwrap_err().to_string().contains("not a call"));
        assert!(RoleGrant::parse("call_manager", "global").is_ok());
        assert!(RoleGrant::parse("call_manager", "call:1").is_ok());
    }

    #[test]
    fn roles_parse_their_own_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn names_are_normalised_and_look_alikes_refused() {
        assert_eq!(
            DisplayName::parse("name", "  Ｌéa Dupont ").unwrap().as_str(),
            "Léa Dupont",
            "NFKC folds full-width"
        );
        assert_eq!(DisplayName::parse("name", "ﬁne-tune").unwrap().as_str(), "fine-tune", "and ligatures");
        for ok in ["Léa Dupont", "Дмитрий Иванов", "山田 花子", "やまだ はなこ 山田", "김민준", "Ζωή", "job-42 (v2)"]
        {
            assert!(DisplayName::parse("name", ok).is_ok(), "{ok}");
        }
        // A Cyrillic а (U+0430) among Latin letters.
        let error = DisplayName::parse("name", "Admin\u{0430}").unwrap_err().to_string();
        assert!(error.contains("mixes scripts (Latin and Cyrillic)"), "{error}");
        let error = DisplayName::parse("name", "invoice\u{202E}fdp.exe").unwrap_err().to_string();
        assert!(error.contains("U+202E"), "{error}");
        assert!(DisplayName::parse("name", "a\u{200B}b").is_err());
        assert!(DisplayName::parse("name", "やまだ 김").is_err(), "kana and hangul do not mix");
        assert!(Email::parse("lеa@example.org").unwrap_err().to_string().contains("ASCII"), "a Cyrillic е");
        assert!(Email::parse("Lea@Example.org").is_ok());
    }
}
