//! A card's Markdown body as sanitized HTML, from pulldown-cmark's events through our own writer
//! (pulldown-cmark's HTML writer passes raw HTML through; this one never does):
//!
//! - raw HTML, block or inline, is shown as escaped text;
//! - a link keeps its `href` only for `http:`, `https:` and `mailto:` URLs (no whitespace or
//!   control character anywhere); any other link is rendered as its text alone;
//! - images are never loaded: an image is a link to its URL (under the same rule), its alt
//!   text as the link's text;
//! - headings move one level down (`#` becomes `<h2>`), so the page's `<h1>` stays the dataset's
//!   name;
//! - every text and attribute is escaped; links carry `rel="nofollow ugc noopener noreferrer"`.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd};

/// Renders Markdown as HTML that holds no script, no raw HTML, no loaded resource, and only
/// `http`, `https` and `mailto` links.
pub fn render_markdown(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut out = String::with_capacity(markdown.len() + markdown.len() / 4);
    // One closing string per open tag, popped by its end.
    let mut closers: Vec<&'static str> = Vec::new();
    let mut in_table_head = false;
    let mut links_open = 0usize;
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Start(tag) => {
                let closer = match tag {
                    Tag::Paragraph => open(&mut out, "<p>", "</p>"),
                    Tag::Heading { level, .. } => {
                        let (start, end) = heading(level);
                        open(&mut out, start, end)
                    }
                    Tag::BlockQuote(_) => open(&mut out, "<blockquote>", "</blockquote>"),
                    Tag::CodeBlock(kind) => {
                        let language = match kind {
                            CodeBlockKind::Fenced(info) => info.split_whitespace().next().map(str::to_string),
                            CodeBlockKind::Indented => None,
                        };
                        match language.filter(|l| {
                            l.len() <= 32
                                && l.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
                        }) {
                            Some(language) => out.push_str(&format!("<pre><code class=\"language-{language}\">")),
                            None => out.push_str("<pre><code>"),
                        }
                        "</code></pre>"
                    }
                    Tag::List(Some(1)) => open(&mut out, "<ol>", "</ol>"),
                    Tag::List(Some(start)) => {
                        out.push_str(&format!("<ol start=\"{start}\">"));
                        "</ol>"
                    }
                    Tag::List(None) => open(&mut out, "<ul>", "</ul>"),
                    Tag::Item => open(&mut out, "<li>", "</li>"),
                    Tag::Table(_) => open(&mut out, "<table>", "</table>"),
                    Tag::TableHead => {
                        in_table_head = true;
                        open(&mut out, "<thead><tr>", "</tr></thead>")
                    }
                    Tag::TableRow => open(&mut out, "<tr>", "</tr>"),
                    Tag::TableCell if in_table_head => open(&mut out, "<th>", "</th>"),
                    Tag::TableCell => open(&mut out, "<td>", "</td>"),
                    Tag::Emphasis => open(&mut out, "<em>", "</em>"),
                    Tag::Strong => open(&mut out, "<strong>", "</strong>"),
                    Tag::Strikethrough => open(&mut out, "<del>", "</del>"),
                    Tag::Link { link_type, dest_url, title, .. } | Tag::Image { link_type, dest_url, title, .. } => {
                        let url = match link_type {
                            LinkType::Email => format!("mailto:{dest_url}"),
                            _ => dest_url.to_string(),
                        };
                        // An image inside a link (a badge) is its alt text: no link in a link.
                        links_open += 1;
                        if links_open > 1 || !is_safe_url(&url) {
                            ""
                        } else {
                            out.push_str("<a href=\"");
                            escape_into(&mut out, &url);
                            out.push('"');
                            if !title.is_empty() {
                                out.push_str(" title=\"");
                                escape_into(&mut out, &title);
                                out.push('"');
                            }
                            out.push_str(" rel=\"nofollow ugc noopener noreferrer\">");
                            "</a>"
                        }
                    }
                    // Raw HTML blocks: their contents arrive as `Event::Html`, escaped below.
                    Tag::HtmlBlock => open(&mut out, "<p>", "</p>"),
                    // Not enabled in `options`; rendered as their contents if they ever come.
                    _ => "",
                };
                closers.push(closer);
            }
            Event::End(end) => {
                match end {
                    TagEnd::TableHead => in_table_head = false,
                    TagEnd::Link | TagEnd::Image => links_open = links_open.saturating_sub(1),
                    _ => {}
                }
                out.push_str(closers.pop().unwrap_or_default());
            }
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => escape_into(&mut out, &text),
            Event::Code(code) => {
                out.push_str("<code>");
                escape_into(&mut out, &code);
                out.push_str("</code>");
            }
            Event::InlineMath(text) | Event::DisplayMath(text) | Event::FootnoteReference(text) => {
                escape_into(&mut out, &text)
            }
            Event::SoftBreak => out.push('\n'),
            Event::HardBreak => out.push_str("<br>\n"),
            Event::Rule => out.push_str("<hr>\n"),
            Event::TaskListMarker(true) => out.push_str("<input type=\"checkbox\" disabled checked> "),
            Event::TaskListMarker(false) => out.push_str("<input type=\"checkbox\" disabled> "),
        }
    }
    out
}

fn open(out: &mut String, start: &str, end: &'static str) -> &'static str {
    out.push_str(start);
    end
}

fn heading(level: HeadingLevel) -> (&'static str, &'static str) {
    match level {
        HeadingLevel::H1 => ("<h2>", "</h2>"),
        HeadingLevel::H2 => ("<h3>", "</h3>"),
        HeadingLevel::H3 => ("<h4>", "</h4>"),
        HeadingLevel::H4 => ("<h5>", "</h5>"),
        HeadingLevel::H5 | HeadingLevel::H6 => ("<h6>", "</h6>"),
    }
}

/// `http://`, `https://` or `mailto:` (any case), followed by something, with no whitespace or
/// control character anywhere (browsers drop tabs and newlines inside URLs).
fn is_safe_url(url: &str) -> bool {
    let has_prefix = |prefix: &str| {
        url.len() > prefix.len() && url.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    (has_prefix("http://") || has_prefix("https://") || has_prefix("mailto:"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Escapes text for an HTML element or a double- or single-quoted attribute.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}
