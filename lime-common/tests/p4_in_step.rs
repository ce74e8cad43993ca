//! `p4/lime.p4` is in step with `lime_common::p4`: the headers that cross the wire and the
//! CPU port, the flow-key struct and the flow tables' keys, the P4Runtime names and ids of
//! tables, actions and direct counters, and every `LIME_*` constant.
//!
//! No P4 compiler is available where this runs, so a small hand-written scanner reads the
//! program: it strips comments and preprocessor lines, splits the rest into tokens and
//! picks out the declarations it knows (`header`, `struct`, `const`, `table`, `action`,
//! `direct_counter` with their `@name`/`@id` annotations). Anything in those declarations
//! it does not understand fails the test rather than being skipped.

use std::collections::BTreeMap;

use lime_common::p4::{
    ACTIONS, CONSTANTS, DIRECT_COUNTERS, FLOW_KEY_FIELDS, FLOW_TABLE_PREFIX, Field,
    PACKET_IN_FIELDS, TABLES, TUNNEL_HEADER_FIELDS,
};

const P4_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../p4/lime.p4");

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// A number literal (`0x1f`, `48w0x0800`, `5`): its value.
    Num(u128),
    Str(String),
    /// `@name`: an annotation's name (its arguments follow as ordinary tokens).
    Annot(String),
    Punct(char),
}

/// Comments and preprocessor lines removed.
fn strip(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            let end = r.find("*/").expect("unterminated /* comment in lime.p4");
            out.push(' ');
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').expect("unterminated string in lime.p4");
            out.push('"');
            out.push_str(&r[..=end]);
            rest = &r[end + 1..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn number(text: &str) -> u128 {
    // A width prefix (`48w`, `8s`) comes before the value.
    let value = match text.find(['w', 's']) {
        Some(i) if text[..i].bytes().all(|b| b.is_ascii_digit()) && i > 0 => &text[i + 1..],
        _ => text,
    };
    let value = value.replace('_', "");
    let parsed = if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        u128::from_str_radix(hex, 16)
    } else if let Some(bin) = value.strip_prefix("0b") {
        u128::from_str_radix(bin, 2)
    } else {
        value.parse()
    };
    parsed.unwrap_or_else(|e| panic!("bad number literal {text:?} in lime.p4: {e}"))
}

fn tokens(src: &str) -> Vec<Tok> {
    let src = strip(src);
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let word = |start: usize| {
        let mut end = start;
        while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
            end += 1;
        }
        (chars[start..end].iter().collect::<String>(), end)
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let end = i + 1 + chars[i + 1..].iter().position(|&c| c == '"').unwrap();
            toks.push(Tok::Str(chars[i + 1..end].iter().collect()));
            i = end + 1;
        } else if c == '@' {
            let (name, end) = word(i + 1);
            toks.push(Tok::Annot(name));
            i = end;
        } else if c.is_ascii_digit() {
            let (text, end) = word(i);
            toks.push(Tok::Num(number(&text)));
            i = end;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let (name, end) = word(i);
            toks.push(Tok::Ident(name));
            i = end;
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    toks
}

fn ident(t: &Tok) -> Option<&str> {
    match t {
        Tok::Ident(s) => Some(s),
        _ => None,
    }
}

/// Index just past the bracket matching the opening one at `open`.
fn close(toks: &[Tok], open: usize) -> usize {
    let (o, c) = match toks[open] {
        Tok::Punct('{') => ('{', '}'),
        Tok::Punct('(') => ('(', ')'),
        Tok::Punct('<') => ('<', '>'),
        ref t => panic!("expected a bracket, found {t:?}"),
    };
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if *t == Tok::Punct(o) {
            depth += 1;
        } else if *t == Tok::Punct(c) {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    panic!("unbalanced {o} in lime.p4")
}

/// One annotation: name and argument tokens.
type Annotation = (String, Vec<Tok>);

/// Annotations starting at `i`; returns them and the index after them.
fn annotations(toks: &[Tok], mut i: usize) -> (Vec<Annotation>, usize) {
    let mut found = Vec::new();
    while let Some(Tok::Annot(name)) = toks.get(i) {
        let mut args = Vec::new();
        i += 1;
        if toks.get(i) == Some(&Tok::Punct('(')) {
            let end = close(toks, i);
            args = toks[i + 1..end - 1].to_vec();
            i = end;
        }
        found.push((name.clone(), args));
    }
    (found, i)
}

/// A parsed P4 program, as far as this test needs it.
#[derive(Default)]
struct Program {
    /// `header` and `struct` declarations: name → fields (name, bits).
    types: BTreeMap<String, Vec<(String, u32)>>,
    /// `const bit<W> NAME = VALUE;` with a number value: name → (W, value).
    consts: BTreeMap<String, (u32, u128)>,
    /// `table`, `action` and `direct_counter` declarations in order.
    decls: Vec<Decl>,
    /// Table bodies: name → body.
    tables: BTreeMap<String, TableBody>,
}

#[derive(Debug)]
struct Decl {
    kind: &'static str,
    name: String,
    at_name: Option<String>,
    at_id: Option<u128>,
}

#[derive(Debug, Default)]
struct TableBody {
    /// (expression, match kind, @name).
    keys: Vec<(String, String, Option<String>)>,
    actions: Vec<String>,
    counters: Option<String>,
    /// The first token of every `const entries` entry.
    entries: Vec<String>,
}

fn annotation_str(annots: &[Annotation], name: &str) -> Option<String> {
    annots
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, args)| match args.as_slice() {
            [Tok::Str(s)] => s.clone(),
            other => panic!("@{name} takes one string, found {other:?}"),
        })
}

fn annotation_num(annots: &[Annotation], name: &str) -> Option<u128> {
    annots
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, args)| match args.as_slice() {
            [Tok::Num(v)] => *v,
            other => panic!("@{name} takes one number, found {other:?}"),
        })
}

/// `bit<W> name;` fields of a header or struct body `toks[open..end]`.
fn fields(toks: &[Tok], open: usize, end: usize, what: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut i = open + 1;
    while i < end - 1 {
        let (_, j) = annotations(toks, i);
        i = j;
        let field = &toks[i..(i + 6).min(end)];
        match field {
            [
                Tok::Ident(bit),
                Tok::Punct('<'),
                Tok::Num(w),
                Tok::Punct('>'),
                Tok::Ident(name),
                Tok::Punct(';'),
            ] if bit == "bit" => {
                out.push((name.clone(), u32::try_from(*w).unwrap()));
                i += 6;
            }
            // Fields of other types (nested structs, varbits) are kept by type name.
            [Tok::Ident(ty), Tok::Ident(name), Tok::Punct(';'), ..] => {
                out.push((format!("{name}: {ty}"), 0));
                i += 3;
            }
            [Tok::Ident(ty), Tok::Punct('<'), ..] => {
                let after = close(toks, i + 1);
                let name = ident(&toks[after]).unwrap_or_else(|| panic!("{what}: field name"));
                out.push((format!("{name}: {ty}<>"), 0));
                i = after + 2;
            }
            other => panic!("{what}: cannot read field at {other:?}"),
        }
    }
    out
}

fn table_body(toks: &[Tok], open: usize, end: usize, table: &str) -> TableBody {
    let mut body = TableBody::default();
    let mut i = open + 1;
    while i < end - 1 {
        let prop = ident(&toks[i]).unwrap_or_else(|| panic!("{table}: property at {:?}", toks[i]));
        let prop = if prop == "const" {
            i += 1;
            ident(&toks[i]).unwrap()
        } else {
            prop
        };
        assert_eq!(toks[i + 1], Tok::Punct('='), "{table}.{prop}: expected =");
        i += 2;
        match prop {
            "key" | "actions" | "entries" => {
                let list_end = close(toks, i);
                let mut j = i + 1;
                while j < list_end - 1 {
                    let start = j;
                    let stop = j + toks[j..]
                        .iter()
                        .position(|t| *t == Tok::Punct(';'))
                        .unwrap();
                    let item = &toks[start..stop];
                    match prop {
                        "key" => {
                            let colon = item.iter().position(|t| *t == Tok::Punct(':')).unwrap();
                            let expr: String = item[..colon]
                                .iter()
                                .map(|t| match t {
                                    Tok::Ident(s) => s.clone(),
                                    Tok::Punct(c) => c.to_string(),
                                    other => panic!("{table}: key expression {other:?}"),
                                })
                                .collect();
                            let kind = ident(&item[colon + 1]).unwrap().to_owned();
                            let (annots, after) = annotations(item, colon + 2);
                            assert_eq!(after, item.len(), "{table}: key {expr}: trailing tokens");
                            body.keys
                                .push((expr, kind, annotation_str(&annots, "name")));
                        }
                        "actions" => {
                            let (_, k) = annotations(item, 0);
                            body.actions.push(ident(&item[k]).unwrap().to_owned());
                        }
                        _ => body.entries.push(ident(&item[0]).unwrap().to_owned()),
                    }
                    j = stop + 1;
                }
                i = list_end;
            }
            _ => {
                let stop = i + toks[i..]
                    .iter()
                    .position(|t| *t == Tok::Punct(';'))
                    .unwrap();
                if prop == "counters" {
                    body.counters = ident(&toks[i]).map(str::to_owned);
                }
                i = stop + 1;
            }
        }
    }
    body
}

fn parse(src: &str) -> Program {
    let toks = tokens(src);
    let mut p = Program::default();
    let mut i = 0;
    while i < toks.len() {
        let (annots, j) = annotations(&toks, i);
        if j != i {
            i = j;
        }
        let Some(word) = toks.get(i).and_then(ident) else {
            i += 1;
            continue;
        };
        match word {
            "header" | "struct" => {
                let name = ident(&toks[i + 1]).unwrap().to_owned();
                let end = close(&toks, i + 2);
                let f = fields(&toks, i + 2, end, &name);
                assert!(p.types.insert(name.clone(), f).is_none(), "{name} twice");
                i = end;
            }
            "const" => {
                if let [
                    Tok::Ident(bit),
                    Tok::Punct('<'),
                    Tok::Num(w),
                    Tok::Punct('>'),
                    Tok::Ident(name),
                    Tok::Punct('='),
                    Tok::Num(v),
                    Tok::Punct(';'),
                    ..,
                ] = &toks[i + 1..]
                    && bit == "bit"
                {
                    let w = u32::try_from(*w).unwrap();
                    assert!(
                        p.consts.insert(name.clone(), (w, *v)).is_none(),
                        "const {name} twice"
                    );
                }
                i += 1;
            }
            "table" | "action" => {
                let kind = if word == "table" { "table" } else { "action" };
                let name = ident(&toks[i + 1]).unwrap().to_owned();
                p.decls.push(Decl {
                    kind,
                    name: name.clone(),
                    at_name: annotation_str(&annots, "name"),
                    at_id: annotation_num(&annots, "id"),
                });
                if kind == "table" {
                    let end = close(&toks, i + 2);
                    p.tables
                        .insert(name.clone(), table_body(&toks, i + 2, end, &name));
                    i = end;
                } else {
                    i += 2;
                }
            }
            "direct_counter" => {
                let end = close(&toks, i + 1);
                let name = ident(&toks[end]).unwrap().to_owned();
                p.decls.push(Decl {
                    kind: "direct_counter",
                    name,
                    at_name: annotation_str(&annots, "name"),
                    at_id: annotation_num(&annots, "id"),
                });
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    p
}

fn program() -> Program {
    let src =
        std::fs::read_to_string(P4_PATH).unwrap_or_else(|e| panic!("cannot read {P4_PATH}: {e}"));
    parse(&src)
}

fn expected(fields: &[Field]) -> Vec<(String, u32)> {
    fields.iter().map(|f| (f.name.to_owned(), f.bits)).collect()
}

fn assert_type(p: &Program, name: &str, want: &[Field]) {
    let got = p
        .types
        .get(name)
        .unwrap_or_else(|| panic!("lime.p4 declares no {name}"));
    assert_eq!(
        got,
        &expected(want),
        "{name} in lime.p4 (left) differs from lime_common::p4 (right): same fields, same \
         order, same widths"
    );
}

#[test]
fn tunnel_header_matches() {
    assert_type(&program(), "lime_tunnel_t", TUNNEL_HEADER_FIELDS);
}

#[test]
fn packet_out_header_is_the_tunnel_header() {
    assert_type(&program(), "lime_packet_out_t", TUNNEL_HEADER_FIELDS);
}

#[test]
fn packet_in_header_matches() {
    assert_type(&program(), "lime_packet_in_t", PACKET_IN_FIELDS);
}

#[test]
fn flow_key_struct_matches() {
    assert_type(&program(), "lime_flow_key_t", FLOW_KEY_FIELDS);
}

/// Declarations of one kind with their @name/@id, checked for form and returned as
/// (name, id) in declaration order.
fn declared(p: &Program, kind: &str, need_id: bool) -> Vec<(String, u32)> {
    p.decls
        .iter()
        .filter(|d| d.kind == kind)
        .filter_map(|d| match (&d.at_name, d.at_id) {
            (Some(n), Some(id)) => {
                assert_eq!(
                    n,
                    &format!(".{}", d.name),
                    "{kind} {}: @name must be \".{}\" (a top-level P4Runtime name)",
                    d.name,
                    d.name
                );
                Some((d.name.clone(), u32::try_from(id).unwrap()))
            }
            (None, None) if !need_id => None,
            _ => panic!("{kind} {}: needs both @name and @id", d.name),
        })
        .collect()
}

fn owned(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(n, id)| ((*n).to_owned(), *id)).collect()
}

#[test]
fn tables_match() {
    assert_eq!(
        declared(&program(), "table", true),
        owned(TABLES),
        "tables (name, @id) in lime.p4 (left) differ from lime_common::p4::TABLES (right)"
    );
}

#[test]
fn direct_counters_match() {
    let p = program();
    assert_eq!(
        declared(&p, "direct_counter", true),
        owned(DIRECT_COUNTERS),
        "direct counters in lime.p4 (left) differ from lime_common::p4::DIRECT_COUNTERS"
    );
    for (table, body) in &p.tables {
        if let Some(c) = &body.counters {
            assert_eq!(
                c,
                &format!("{table}_counter"),
                "{table}: its counter's name"
            );
        }
    }
}

#[test]
fn actions_match() {
    let p = program();
    let with_ids = declared(&p, "action", false);
    assert_eq!(
        with_ids,
        owned(ACTIONS),
        "actions with @id in lime.p4 (left) differ from lime_common::p4::ACTIONS (right)"
    );
    // Exactly the actions tables offer are control-plane entities: each needs an id,
    // and an id on an action no table offers would never reach P4Info.
    let offered: Vec<&String> = p.tables.values().flat_map(|t| &t.actions).collect();
    for a in &offered {
        assert!(
            with_ids.iter().any(|(n, _)| n == *a),
            "action {a} is offered by a table but has no @name/@id"
        );
    }
    for (a, _) in &with_ids {
        assert!(
            offered.contains(&a),
            "action {a} has an @id but no table offers it"
        );
    }
}

#[test]
fn flow_tables_have_the_flow_key() {
    let p = program();
    let mut want: Vec<(String, String, Option<String>)> = vec![
        (
            "meta.vswitch".into(),
            "exact".into(),
            Some("vswitch".into()),
        ),
        (
            "meta.version".into(),
            "range".into(),
            Some("version".into()),
        ),
    ];
    want.extend(FLOW_KEY_FIELDS.iter().map(|f| {
        (
            format!("meta.key.{}", f.name),
            "ternary".to_owned(),
            Some(f.name.to_owned()),
        )
    }));
    let flow: Vec<_> = TABLES
        .iter()
        .filter(|(n, _)| n.starts_with(FLOW_TABLE_PREFIX))
        .collect();
    assert!(!flow.is_empty());
    for (name, _) in flow {
        let body = p
            .tables
            .get(*name)
            .unwrap_or_else(|| panic!("lime.p4 has no table {name}"));
        assert_eq!(
            body.keys, want,
            "{name}: key (left) differs from the flow key"
        );
        assert_eq!(
            body.actions,
            ["lime_rule", "lime_table_miss"],
            "{name}: actions"
        );
        assert_eq!(body.counters.as_deref(), Some(&*format!("{name}_counter")));
    }
}

#[test]
fn constants_match() {
    let p = program();
    for (name, value) in CONSTANTS {
        let (width, got) = p
            .consts
            .get(*name)
            .unwrap_or_else(|| panic!("lime.p4 declares no const {name}"));
        assert_eq!(
            *got,
            u128::from(*value),
            "const {name}: {got:#x} in lime.p4, {value:#x} in lime-common"
        );
        assert!(
            *width >= 128 || *got < (1u128 << width),
            "const {name}: {got:#x} does not fit bit<{width}>"
        );
    }
    for name in p.consts.keys().filter(|n| n.starts_with("LIME_")) {
        assert!(
            CONSTANTS.iter().any(|(n, _)| n == name),
            "lime.p4 const {name} mirrors nothing in lime_common::p4::CONSTANTS"
        );
    }
}

#[test]
fn drop_table_counts_every_reason() {
    let p = program();
    let body = p.tables.get("lime_drop").expect("lime.p4 has no lime_drop");
    let reasons: Vec<&str> = CONSTANTS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.starts_with("LIME_DROP_"))
        .collect();
    assert_eq!(body.entries, reasons, "lime_drop's const entries (left)");
}

/// The scanner itself: a changed width or a renamed field is seen.
#[test]
fn scanner_sees_a_changed_width() {
    let src = std::fs::read_to_string(P4_PATH).unwrap();
    let good = parse(&src);
    let bad = parse(&src.replacen("bit<16> vswitch;", "bit<15> vswitch;", 1));
    assert_eq!(good.types["lime_tunnel_t"], expected(TUNNEL_HEADER_FIELDS));
    assert_ne!(bad.types["lime_tunnel_t"], expected(TUNNEL_HEADER_FIELDS));
    let renamed = parse(&src.replacen(
        "@name(\".lime_flow_3\") @id(0x02000013)",
        "@name(\".lime_flow_3\") @id(0x02000113)",
        1,
    ));
    assert_ne!(declared(&renamed, "table", true), owned(TABLES));
}
