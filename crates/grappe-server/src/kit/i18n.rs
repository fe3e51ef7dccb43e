//! Translations: every user-facing text lives in `locales/{fr,en}/main.ftl` (Fluent). French is
//! the default; English is chosen by the `lang` cookie or by `Accept-Language`.

use std::sync::OnceLock;

use fluent_bundle::FluentResource;
use fluent_bundle::concurrent::FluentBundle;
use unic_langid::langid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    Fr,
    En,
}

impl Locale {
    pub fn code(self) -> &'static str {
        match self {
            Locale::Fr => "fr",
            Locale::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Locale> {
        match code {
            "fr" => Some(Locale::Fr),
            "en" => Some(Locale::En),
            _ => None,
        }
    }

    /// The cookie wins; otherwise the first supported language of `Accept-Language` in the
    /// client's order of preference; otherwise French.
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Locale {
        if let Some(locale) = cookie.and_then(Locale::parse) {
            return locale;
        }
        let mut ranked: Vec<(f32, Locale)> = accept_language
            .unwrap_or("")
            .split(',')
            .filter_map(|item| {
                let mut parts = item.trim().split(';');
                let tag = parts.next()?.trim().to_ascii_lowercase();
                let quality = parts
                    .find_map(|param| param.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                let primary = tag.split('-').next()?;
                Locale::parse(primary).map(|locale| (quality, locale))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.first().map_or(Locale::Fr, |(_, locale)| *locale)
    }

    /// The decimal separator of this language, for figures.
    pub fn decimal_separator(self) -> char {
        match self {
            Locale::Fr => ',',
            Locale::En => '.',
        }
    }

    /// An integer as this language writes it: `100 000` (narrow no-break spaces), `100,000`.
    pub fn integer(self, value: i64) -> String {
        let grouping = match self {
            Locale::Fr => '\u{202f}',
            Locale::En => ',',
        };
        grappe_domain::money::group_thousands(value, grouping)
    }

    /// An amount in cents as its short human figure in this language: `1,5 Md€`, `1.5 bn €`.
    pub fn money(self, cents: i64) -> String {
        grappe_domain::money::format_short(grappe_domain::money::Cents::new(cents), self.decimal_separator())
    }

    /// A date and a minute for people, in the platform's zone with its abbreviation:
    /// `29/11/2026 19:12 CET`, `29 Nov 2026, 19:12 CET`; on a page, a `<time>` element.
    pub fn datetime(self, unix_ms: i64) -> Time {
        Time { unix_ms, text: self.local_time(unix_ms, false) }
    }

    /// The same to the second, for timelines: `29/11/2026 19:12:05 CET`.
    pub fn datetime_seconds(self, unix_ms: i64) -> Time {
        Time { unix_ms, text: self.local_time(unix_ms, true) }
    }

    fn local_time(self, unix_ms: i64, with_seconds: bool) -> String {
        let (offset_min, zone) = crate::kit::zone::current().at(unix_ms);
        let local = unix_ms + offset_min * 60_000;
        let date = crate::kit::page::iso_date(local);
        let (year, month, day) = (&date[..4], &date[5..7], &date[8..10]);
        let seconds = local.rem_euclid(86_400_000) / 1000;
        let mut time = format!("{:02}:{:02}", seconds / 3600, seconds / 60 % 60);
        if with_seconds {
            time.push_str(&format!(":{:02}", seconds % 60));
        }
        match self {
            Locale::Fr => format!("{day}/{month}/{year} {time} {zone}"),
            Locale::En => {
                const MONTHS: [&str; 12] =
                    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
                let name = MONTHS[month.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
                format!("{} {name} {year}, {time} {zone}", day.trim_start_matches('0'))
            }
        }
    }

    /// A duration for people, two units at most, the rest dropped (not rounded up): `45 s`,
    /// `12 min`, `3 h 12 min`, `2 j 4 h` (`2 d 4 h`).
    pub fn duration(self, seconds: i64) -> String {
        let day = self.pick("j", "d");
        let s = seconds.unsigned_abs();
        let (days, hours, minutes, rest) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
        let text = match (days, hours, minutes) {
            (0, 0, 0) => format!("{rest} s"),
            (0, 0, _) if rest == 0 => format!("{minutes} min"),
            (0, 0, _) => format!("{minutes} min {rest} s"),
            (0, _, 0) => format!("{hours} h"),
            (0, _, _) => format!("{hours} h {minutes} min"),
            (_, 0, _) => format!("{days} {day}"),
            (_, _, _) => format!("{days} {day} {hours} h"),
        };
        if seconds < 0 { format!("-{text}") } else { text }
    }

    /// A figure with at most two decimals, as this language writes it: `215 937 412,35`,
    /// `-1,970.4`.
    pub fn decimal(self, value: f64) -> String {
        if value.fract() == 0.0 && value.abs() < 1e15 {
            return self.integer(value as i64);
        }
        self.trimmed(value, 2)
    }

    /// A figure with at most `places` decimals, trailing zeros left out: `0,7468`, `12,5`.
    pub fn trimmed(self, value: f64, places: usize) -> String {
        let text = self.fixed(value, places);
        if places == 0 {
            return text;
        }
        let text = text.trim_end_matches('0');
        text.strip_suffix(self.decimal_separator()).unwrap_or(text).to_owned()
    }

    /// A figure with exactly `places` decimals, as this language writes it: `0,8200`, `0.8200`.
    pub fn fixed(self, value: f64, places: usize) -> String {
        let text = format!("{:.*}", places, value.abs());
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let sign = if value < 0.0 { "-" } else { "" };
        let whole = self.integer(whole.parse().unwrap_or(0));
        if fraction.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}{}{fraction}", self.decimal_separator())
        }
    }

    /// A size in bytes with binary units as this language writes them: `1,5 Mio`, `1.5 MiB`.
    pub fn bytes(self, value: u64) -> String {
        const UNITS: [(&str, &str); 5] = [("o", "B"), ("Kio", "KiB"), ("Mio", "MiB"), ("Gio", "GiB"), ("Tio", "TiB")];
        let mut scaled = value as f64;
        let mut unit = 0;
        while scaled >= 1024.0 && unit + 1 < UNITS.len() {
            scaled /= 1024.0;
            unit += 1;
        }
        let (fr, en) = UNITS[unit];
        let figure = if unit == 0 { value.to_string() } else { format!("{scaled:.1}") };
        format!("{}\u{a0}{}", figure.replace('.', &self.decimal_separator().to_string()), self.pick(fr, en))
    }

    /// Picks the French or English variant of a stored text.
    pub fn pick<'a>(self, fr: &'a str, en: &'a str) -> &'a str {
        match self {
            Locale::Fr => fr,
            Locale::En => en,
        }
    }
}

const FR: &str = include_str!("../../locales/fr/main.ftl");
const EN: &str = include_str!("../../locales/en/main.ftl");

type Bundle = FluentBundle<FluentResource>;

fn bundle(locale: Locale) -> &'static Bundle {
    static FR_BUNDLE: OnceLock<Bundle> = OnceLock::new();
    static EN_BUNDLE: OnceLock<Bundle> = OnceLock::new();
    let (cell, source, id) = match locale {
        Locale::Fr => (&FR_BUNDLE, FR, langid!("fr")),
        Locale::En => (&EN_BUNDLE, EN, langid!("en")),
    };
    cell.get_or_init(|| {
        let resource = FluentResource::try_new(source.to_owned()).unwrap_or_else(|(resource, errors)| {
            tracing::error!(locale = locale.code(), ?errors, "translation file has errors");
            resource
        });
        let mut bundle = FluentBundle::new_concurrent(vec![id]);
        bundle.set_use_isolating(false);
        if let Err(errors) = bundle.add_resource(resource) {
            tracing::error!(locale = locale.code(), ?errors, "translation file has duplicate keys");
        }
        bundle
    })
}

/// A moment as people read it (`text`, in the platform's zone) and as machines do: written on a
/// page as `<time datetime="2026-11-29T18:00:00.000Z">29/11/2026 19:00 CET</time>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Time {
    unix_ms: i64,
    /// Private: only [`Locale`] writes it (digits, month names, zones), so it needs no escaping.
    text: String,
}

impl Time {
    /// The text alone, for a place that is not HTML.
    pub fn into_text(self) -> String {
        self.text
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digits, month names, separators and a zone's letters: nothing to escape.
        write!(f, r#"<time datetime="{}">{}</time>"#, crate::kit::page::iso8601(self.unix_ms), self.text)
    }
}

impl askama::filters::HtmlSafe for Time {}

/// The translator handed to templates: `tr.t("key")`.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub locale: Locale,
}

impl Tr {
    pub fn t(&self, key: &str) -> String {
        let bundle = bundle(self.locale);
        let Some(pattern) = bundle.get_message(key).and_then(|message| message.value()) else {
            tracing::warn!(key, locale = self.locale.code(), "missing translation");
            return key.to_owned();
        };
        let mut errors = Vec::new();
        bundle.format_pattern(pattern, None, &mut errors).into_owned()
    }

    /// A message about `count` things, in the right plural through Fluent's rules (in French
    /// 0 and 1 take the singular): `project-members = { $count -> [one] ... *[other] ... }`.
    pub fn count(&self, key: &str, count: i64) -> String {
        let bundle = bundle(self.locale);
        let Some(pattern) = bundle.get_message(key).and_then(|message| message.value()) else {
            tracing::warn!(key, locale = self.locale.code(), "missing translation");
            return format!("{count} {key}");
        };
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("count", count);
        let mut errors = Vec::new();
        bundle.format_pattern(pattern, Some(&args), &mut errors).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(source: &str) -> Vec<&str> {
        let mut keys: Vec<&str> = source
            .lines()
            .filter_map(|line| line.split_once(" = ").map(|(key, _)| key.trim()))
            .filter(|key| !key.starts_with('#'))
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn dates_for_people_in_each_language() {
        // Without a zone set, UTC (the server sets the platform's at start).
        assert_eq!(Locale::Fr.datetime(1_795_975_200_000).into_text(), "29/11/2026 18:00 UTC");
        assert_eq!(Locale::En.datetime(1_795_975_200_000).into_text(), "29 Nov 2026, 18:00 UTC");
        assert_eq!(Locale::Fr.datetime_seconds(1_795_975_205_000).into_text(), "29/11/2026 18:00:05 UTC");
        assert_eq!(
            Locale::Fr.datetime(1_795_975_200_000).to_string(),
            r#"<time datetime="2026-11-29T18:00:00.000Z">29/11/2026 18:00 UTC</time>"#
        );
    }

    #[test]
    fn durations_for_people() {
        let check = |seconds, expected: &str| assert_eq!(Locale::En.duration(seconds), expected, "{seconds} s");
        check(0, "0 s");
        check(45, "45 s");
        check(60, "1 min");
        check(90, "1 min 30 s");
        check(3600, "1 h");
        check(3 * 3600 + 12 * 60 + 59, "3 h 12 min");
        check(86_400, "1 d");
        check(86_400 + 59 * 60, "1 d");
        check(2 * 86_400 + 4 * 3600 + 1, "2 d 4 h");
        check(-90, "-1 min 30 s");
        assert_eq!(Locale::Fr.duration(86_400 + 3 * 3600), "1 j 3 h");
    }

    #[test]
    fn counts_take_each_languages_plural() {
        let (fr, en) = (Tr { locale: Locale::Fr }, Tr { locale: Locale::En });
        let said = |tr: Tr| [0, 1, 2].map(|n| tr.count("project-members", n));
        assert_eq!(said(fr), ["0 membre", "1 membre", "2 membres"]);
        assert_eq!(said(en), ["0 members", "1 member", "2 members"]);
    }

    #[test]
    fn both_languages_have_the_same_keys() {
        assert_eq!(keys(FR), keys(EN));
        assert!(keys(FR).len() > 40);
    }

    #[test]
    fn every_key_formats_in_both_languages() {
        for key in keys(FR) {
            for locale in [Locale::Fr, Locale::En] {
                assert_ne!(Tr { locale }.t(key), key, "{key} in {locale:?}");
            }
        }
    }

    #[test]
    fn decimals_as_each_language_writes_them() {
        assert_eq!(Locale::Fr.decimal(215_937_412.349), "215\u{202f}937\u{202f}412,35");
        assert_eq!(Locale::En.decimal(-1970.4), "-1,970.4");
        assert_eq!(Locale::En.decimal(3.0), "3");
        assert_eq!(Locale::Fr.decimal(0.5), "0,5");
    }

    #[test]
    fn sizes_in_each_language() {
        assert_eq!(Locale::Fr.bytes(1536 * 1024), "1,5\u{a0}Mio");
        assert_eq!(Locale::En.bytes(1536 * 1024), "1.5\u{a0}MiB");
        assert_eq!(Locale::En.bytes(12), "12\u{a0}B");
    }

    #[test]
    fn negotiation() {
        let check = |cookie, accept, expected| assert_eq!(Locale::negotiate(cookie, accept), expected);
        check(None, None, Locale::Fr);
        check(None, Some("en-GB,en;q=0.9"), Locale::En);
        check(None, Some("de-DE,en;q=0.5,fr;q=0.8"), Locale::Fr);
        check(None, Some("de, es"), Locale::Fr);
        check(Some("en"), Some("fr"), Locale::En);
        check(Some("xx"), Some("en"), Locale::En);
    }
}
