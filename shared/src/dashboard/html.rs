//! HTML building blocks: escaping, links, state badges and the page around a body.
//! Every text that comes from the cluster goes through [`escape`].

use std::fmt::Write as _;

/// `text` safe inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
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
    out
}

/// A link target: `path?k=v&...`, the values URL-encoded (escape it once more for an
/// attribute).
pub fn href(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{path}?{query}")
}

/// `<a href="...">text</a>`.
pub fn link(path: &str, params: &[(&str, &str)], text: &str) -> String {
    format!(
        "<a href=\"{}\">{}</a>",
        escape(&href(path, params)),
        escape(text)
    )
}

/// A state shown as a symbol and a word, coloured by its class on top: colour never
/// carries it alone.
pub fn badge(word: &str) -> String {
    let (symbol, class) = match word {
        "healthy" | "in sync" | "deployed" | "succeeded" | "Normal" => ("✓", "good"),
        "progressing" | "pending" | "pending-install" | "pending-upgrade" => ("…", "busy"),
        "superseded" | "rolled-back" | "uninstalled" => ("·", "quiet"),
        "unknown" => ("?", "quiet"),
        "modified" | "drifted" | "stray" | "Warning" => ("≠", "warn"),
        _ => ("✗", "bad"),
    };
    format!(
        "<span class=\"state {class}\"><span aria-hidden=\"true\">{symbol}</span> {}</span>",
        escape(word)
    )
}

/// A state not known yet, being read: the page is told when it is known (its script
/// then reads it again).
pub fn checking() -> String {
    "<span class=\"state busy checking\" title=\"read in the background: shown when known\"><span aria-hidden=\"true\">…</span> checking</span>".into()
}

/// A whole page: the title, a header with the way back to the overview, the body, the
/// stylesheet and the script (both served by the dashboard itself).
pub fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · kubectl-gitops</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\n\
         <script src=\"/assets/dashboard.js\" defer></script>\n</head>\n<body>\n\
         <header><a class=\"home\" href=\"/\">kubectl-gitops</a> <span class=\"live\" id=\"live\">live updates off</span></header>\n\
         <main id=\"main\">\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    out
}

/// A table: a header row, then rows whose cells are HTML already.
pub fn table(class: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<div class=\"scroll\"><table class=\"{class}\">\n<thead><tr>");
    for h in header {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (index, cell) in row.iter().enumerate() {
            // The column's name, for the narrow layout that stacks a row's cells.
            let label = header.get(index).copied().unwrap_or_default();
            let _ = write!(out, "<td data-label=\"{}\">{cell}</td>", escape(label));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// A form that posts to `action` with `fields` hidden (the CSRF token among them) and one
/// button: how an action is confirmed.
pub fn confirm_form(action: &str, fields: &[(&str, &str)], button: &str) -> String {
    let mut out = format!(
        "<form class=\"confirm\" method=\"post\" action=\"{}\">",
        escape(action)
    );
    for (name, value) in fields {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let _ = writeln!(
        out,
        "<button type=\"submit\">{}</button></form>",
        escape(button)
    );
    out
}

/// A diff as diff-git prints it, each line marked by its first character.
pub fn diff_block(text: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    for line in text.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "file"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            "ctx"
        };
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", escape(line));
    }
    out.push_str("</pre>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_cluster_cannot_become_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            link("/app", &[("app", "a&b"), ("ns", "x y")], "<a>"),
            "<a href=\"/app?app=a%26b&amp;ns=x+y\">&lt;a&gt;</a>"
        );
        assert!(diff_block("+ <b>").contains("<span class=\"add\">+ &lt;b&gt;</span>"));
    }

    #[test]
    fn every_state_has_a_symbol_and_a_word() {
        for word in ["healthy", "failed", "progressing", "modified", "unknown"] {
            let html = badge(word);
            assert!(html.contains(word), "{html}");
            assert!(html.contains("aria-hidden=\"true\">"), "{html}");
        }
        assert!(badge("failed").contains("✗"));
        assert!(badge("healthy").contains("✓"));
    }
}
