use grappe_dataset::render_markdown;

fn check(markdown: &str, expected: &str) {
    assert_eq!(render_markdown(markdown), expected, "for {markdown:?}");
}

/// Nothing an attacker writes may bring a tag, an event handler or a script URL into the page.
fn assert_inert(markdown: &str) {
    let html = render_markdown(markdown);
    let lower = html.to_ascii_lowercase();
    for tag in ["<script", "<img", "<iframe", "<svg", "<style", "<div", "<a href=\"javascript"] {
        assert!(!lower.contains(tag), "{tag} in {html} from {markdown:?}");
    }
    // Every raw `"` is one we wrote around an attribute value: the text before each opening
    // quote ends with one of our attribute names, so no value breaks out into a new attribute.
    let segments: Vec<&str> = html.split('"').collect();
    for (i, segment) in segments.iter().enumerate().step_by(2).take(segments.len() / 2) {
        assert!(
            [" href=", " title=", " rel=", " class=", " start=", " type="].iter().any(|name| segment.ends_with(name)),
            "segment {i} {segment:?} of {html} from {markdown:?}"
        );
    }
    for href in
        segments.iter().zip(segments.iter().skip(1)).filter(|(before, _)| before.ends_with(" href=")).map(|(_, v)| v)
    {
        assert!(["http://", "https://", "mailto:"].iter().any(|scheme| href.starts_with(scheme)), "{href} in {html}");
    }
}

#[test]
fn markdown_renders_with_headings_shifted_down() {
    check(
        "# Title\n\nSome *text* and **bold**.\n",
        "<h2>Title</h2><p>Some <em>text</em> and <strong>bold</strong>.</p>",
    );
    check("###### Six\n##### Five", "<h6>Six</h6><h6>Five</h6>");
    check("- a\n- b\n\n3. c\n", "<ul><li>a</li><li>b</li></ul><ol start=\"3\"><li>c</li></ol>");
    check("`<b>`", "<p><code>&lt;b&gt;</code></p>");
    check("```rust\nfn main() {}\n```\n", "<pre><code class=\"language-rust\">fn main() {}\n</code></pre>");
    check(
        "| a | b |\n|---|---|\n| 1 | 2 |\n",
        "<table><thead><tr><th>a</th><th>b</th></tr></thead><tr><td>1</td><td>2</td></tr></table>",
    );
    check("- [x] done\n", "<ul><li><input type=\"checkbox\" disabled checked> done</li></ul>");
}

#[test]
fn safe_links_are_kept_with_rel() {
    check(
        "[site](https://data.gouv.fr/a?b=1&c=2 \"T'itle\")",
        "<p><a href=\"https://data.gouv.fr/a?b=1&amp;c=2\" title=\"T&#39;itle\" rel=\"nofollow ugc noopener noreferrer\">site</a></p>",
    );
    check(
        "<mailto:x@example.org>",
        "<p><a href=\"mailto:x@example.org\" rel=\"nofollow ugc noopener noreferrer\">mailto:x@example.org</a></p>",
    );
    check(
        "<x@example.org>",
        "<p><a href=\"mailto:x@example.org\" rel=\"nofollow ugc noopener noreferrer\">x@example.org</a></p>",
    );
}

#[test]
fn raw_html_is_escaped() {
    check("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>");
    check("a <img src=x onerror=alert(1)> b", "<p>a &lt;img src=x onerror=alert(1)&gt; b</p>");
    assert_inert("<div onmouseover=\"alert(1)\">x</div>\n\n<iframe src=\"https://evil\"></iframe>");
    assert_inert("<svg/onload=alert(1)>");
    assert_inert("<style>body{display:none}</style>");
}

#[test]
fn unsafe_links_become_text() {
    check("[click](javascript:alert(1))", "<p>click</p>");
    check("[click](JaVaScRiPt:alert(1))", "<p>click</p>");
    check("[click](&#106;avascript:alert(1))", "<p>click</p>");
    check("[click](data:text/html;base64,PHNjcmlwdD4=)", "<p>click</p>");
    check("[click](/relative/path)", "<p>click</p>");
    check("<javascript:alert(1)>", "<p>javascript:alert(1)</p>");
    check("[click](<java\tscript:alert(1)>)", "<p>click</p>");
    check("[click](<https://a.example/x\ny>)", "<p>[click](&lt;https://a.example/x\ny&gt;)</p>");
    for markdown in [
        "[x](vbscript:msgbox(1))",
        "[x](https://example.org/\"onmouseover=\"alert(1))",
        "[x][r]\n\n[r]: javascript:alert(1)",
        "[<img src=x onerror=alert(1)>](https://example.org)",
        "```\"><script>alert(1)</script>\nx\n```",
    ] {
        assert_inert(markdown);
    }
}

#[test]
fn images_are_links_never_loaded() {
    check(
        "![a chart](https://example.org/chart.png)",
        "<p><a href=\"https://example.org/chart.png\" rel=\"nofollow ugc noopener noreferrer\">a chart</a></p>",
    );
    check("![x](javascript:alert(1))", "<p>x</p>");
    // A badge: an image inside a link is the link's text, not a link in a link.
    check(
        "[![build](https://ci.example/badge.svg)](https://ci.example)",
        "<p><a href=\"https://ci.example\" rel=\"nofollow ugc noopener noreferrer\">build</a></p>",
    );
}

/// Pathological Markdown (deep nesting, unclosed brackets and emphasis) renders in bounded
/// time: a card's body is at most 1 MiB.
#[test]
fn pathological_markdown_renders_quickly() {
    for (name, markdown) in [
        ("brackets", "[".repeat(200_000)),
        ("links", "[a](".repeat(100_000)),
        ("emphasis", "*a **b ".repeat(50_000)),
        ("quotes", "> ".repeat(50_000) + "x"),
        ("lists", (0..700).map(|depth| format!("{}- x\n", "  ".repeat(depth))).collect::<String>()),
        ("backticks", "`".repeat(100_000) + "x"),
    ] {
        let start = std::time::Instant::now();
        let html = render_markdown(&markdown);
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{name} took {:?}", start.elapsed());
        assert!(html.len() < 64 * markdown.len() + 64, "{name}");
    }
}
