//! The SOQL subset the sandbox answers: enough for leadsync's adapter and for what
//! simple-salesforce and jsforce send.
//!
//! ```text
//! SELECT COUNT() | field, Parent.field, … FROM Object
//!   [WHERE cond] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n]
//! cond := cond OR cond | cond AND cond | NOT cond | ( cond )
//!       | field (= | != | <> | < | <= | > | >=) literal
//!       | field [NOT] IN ( literal, … ) | field LIKE 'text%'
//! literal := 'text' | number | true | false | null | 2026-11-01 | 2026-11-01T00:00:00Z
//! ```
//!
//! Keywords and field names are case-insensitive, as in Salesforce. Parsing is pure: field
//! names are resolved against the object's fields by the caller ([`Query::fields`]).

use chrono::{DateTime, NaiveDate, Utc};
use std::cmp::Ordering;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `None`: `SELECT COUNT()`.
    pub select: Option<Vec<Path>>,
    pub from: String,
    pub filter: Option<Cond>,
    pub order: Vec<(Path, bool, Option<bool>)>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// A field, or a parent relationship's field (`Account.Industry`): the segments as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<String>);

impl Path {
    pub fn text(&self) -> String {
        self.0.join(".")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Compare(Path, Op, Literal),
    In(Path, Vec<Literal>, bool),
    Like(Path, String),
}

/// A malformed query: Salesforce's `MALFORMED_QUERY` message, with where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SoqlError {
    pub message: String,
    /// 1-based column of the offending token.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Text(String),
    Number(f64),
    Sym(&'static str),
}

fn lex(q: &str) -> Result<Vec<(Tok, usize)>, SoqlError> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |message: String, column: usize| SoqlError { message, column };
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(err("unterminated string literal".into(), col)),
                    Some('\\') => {
                        let next = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match next {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push((Tok::Text(s), col));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number, or a date / datetime literal (digits, '-', ':', 'T', '.', 'Z', '+').
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | ':' | '.' | '+'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            match text.parse::<f64>() {
                Ok(n) => out.push((Tok::Number(n), col)),
                Err(_) => out.push((Tok::Word(text), col)),
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
            out.push((Tok::Word(chars[start..i].iter().collect()), col));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "<=" => Some("<="),
                ">=" => Some(">="),
                "!=" => Some("!="),
                "<>" => Some("!="),
                _ => None,
            };
            if let Some(s) = sym {
                out.push((Tok::Sym(s), col));
                i += 2;
                continue;
            }
            let one = match c {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                _ => return Err(err(format!("unexpected character '{c}'"), col)),
            };
            out.push((Tok::Sym(one), col));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(t, _)| t)
    }

    fn column(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(_, c)| *c)
    }

    fn fail<T>(&self, what: &str) -> Result<T, SoqlError> {
        let found = match self.peek() {
            None => "end of query".to_owned(),
            Some(Tok::Word(w)) => format!("'{w}'"),
            Some(Tok::Text(t)) => format!("'{t}'"),
            Some(Tok::Number(n)) => format!("'{n}'"),
            Some(Tok::Sym(s)) => format!("'{s}'"),
        };
        Err(SoqlError {
            message: format!("unexpected token: {found}, expecting {what}"),
            column: self.column(),
        })
    }

    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, k: &str) -> Result<(), SoqlError> {
        if self.keyword(k) {
            Ok(())
        } else {
            self.fail(k)
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn path(&mut self) -> Result<Path, SoqlError> {
        match self.peek() {
            Some(Tok::Word(w)) if !is_reserved(w) => {
                let p = Path(w.split('.').map(str::to_owned).collect());
                self.at += 1;
                Ok(p)
            }
            _ => self.fail("a field name"),
        }
    }

    fn number(&mut self) -> Result<usize, SoqlError> {
        match self.peek() {
            Some(Tok::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => {
                let n = *n as usize;
                self.at += 1;
                Ok(n)
            }
            _ => self.fail("a whole number"),
        }
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let lit = match self.peek() {
            Some(Tok::Text(t)) => Literal::Text(t.clone()),
            Some(Tok::Number(n)) => Literal::Number(*n),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Tok::Word(w)) => {
                if let Ok(d) = NaiveDate::parse_from_str(w, "%Y-%m-%d") {
                    Literal::Date(d)
                } else if let Some(t) = parse_datetime(w) {
                    Literal::DateTime(t)
                } else {
                    return self
                        .fail("a literal ('text', number, date, datetime, true, false, null)");
                }
            }
            _ => return self.fail("a literal"),
        };
        self.at += 1;
        Ok(lit)
    }

    fn or(&mut self) -> Result<Cond, SoqlError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, SoqlError> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, SoqlError> {
        if self.keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        if self.sym("(") {
            let inner = self.or()?;
            if !self.sym(")") {
                return self.fail("')'");
            }
            return Ok(inner);
        }
        let path = self.path()?;
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            if !self.sym("(") {
                return self.fail("'('");
            }
            let mut values = vec![self.literal()?];
            while self.sym(",") {
                values.push(self.literal()?);
            }
            if !self.sym(")") {
                return self.fail("')'");
            }
            return Ok(Cond::In(path, values, negated));
        }
        if negated {
            return self.fail("IN");
        }
        if self.keyword("LIKE") {
            return match self.literal()? {
                Literal::Text(t) => Ok(Cond::Like(path, t)),
                _ => self.fail("a text pattern"),
            };
        }
        let op = match self.peek() {
            Some(Tok::Sym("=")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym(">=")) => Op::Ge,
            _ => return self.fail("an operator (=, !=, <, <=, >, >=, IN, LIKE)"),
        };
        self.at += 1;
        Ok(Cond::Compare(path, op, self.literal()?))
    }
}

fn is_reserved(w: &str) -> bool {
    [
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT",
        "OFFSET", "ASC", "DESC", "NULLS", "FIRST", "LAST",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(w))
}

/// `2026-11-01T00:00:00Z`, `2026-11-01T00:00:00.000+0000` or `…+00:00`.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|d| d.with_timezone(&Utc))
        .ok()
}

/// Parse one query.
///
/// # Errors
/// [`SoqlError`] naming the unexpected token and its column.
pub fn parse(q: &str) -> Result<Query, SoqlError> {
    let toks = lex(q)?;
    let mut p = Parser {
        end: q.chars().count() + 1,
        toks,
        at: 0,
    };
    p.expect_keyword("SELECT")?;
    let select = if matches!(p.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("COUNT")) {
        p.at += 1;
        if !(p.sym("(") && p.sym(")")) {
            return p.fail("COUNT()");
        }
        None
    } else {
        let mut fields = vec![p.path()?];
        while p.sym(",") {
            fields.push(p.path()?);
        }
        Some(fields)
    };
    p.expect_keyword("FROM")?;
    let from = match p.peek() {
        Some(Tok::Word(w)) if !is_reserved(w) && !w.contains('.') => w.clone(),
        _ => return p.fail("an object name"),
    };
    p.at += 1;
    let filter = if p.keyword("WHERE") {
        Some(p.or()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let path = p.path()?;
            let ascending = if p.keyword("DESC") {
                false
            } else {
                p.keyword("ASC");
                true
            };
            let nulls = if p.keyword("NULLS") {
                if p.keyword("FIRST") {
                    Some(true)
                } else {
                    p.expect_keyword("LAST")?;
                    Some(false)
                }
            } else {
                None
            };
            order.push((path, ascending, nulls));
            if !p.sym(",") {
                break;
            }
        }
    }
    let limit = if p.keyword("LIMIT") {
        Some(p.number()?)
    } else {
        None
    };
    let offset = if p.keyword("OFFSET") {
        Some(p.number()?)
    } else {
        None
    };
    if p.peek().is_some() {
        return p.fail("end of query");
    }
    Ok(Query {
        select,
        from,
        filter,
        order,
        limit,
        offset,
    })
}

/// A field's value as the store holds it (JSON), compared with a literal. `is_id`: Ids compare
/// case-sensitively, byte by byte (base-62 in ASCII order); other text ignores case.
pub fn compare(value: &serde_json::Value, lit: &Literal, is_id: bool) -> Option<Ordering> {
    use serde_json::Value as V;
    match (value, lit) {
        (V::Null, Literal::Null) => Some(Ordering::Equal),
        (V::Null, _) | (_, Literal::Null) => None,
        (V::String(s), Literal::Text(t)) => Some(if is_id {
            s.as_str().cmp(t.as_str())
        } else {
            s.to_lowercase().cmp(&t.to_lowercase())
        }),
        (V::String(s), Literal::DateTime(t)) => parse_datetime(s).map(|v| v.cmp(t)),
        (V::String(s), Literal::Date(d)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .or_else(|| parse_datetime(s).map(|t| t.date_naive()))
            .map(|v| v.cmp(d)),
        (V::Number(n), Literal::Number(m)) => n.as_f64().and_then(|v| v.partial_cmp(m)),
        (V::Bool(b), Literal::Bool(c)) => Some(b.cmp(c)),
        _ => None,
    }
}

/// `LIKE` with `%` (any run) and `_` (one character), case-insensitive.
pub fn like(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some((c, rest)) => v.first().is_some_and(|x| x == c) && go(&v[1..], rest),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&v, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapter_keyset_query_parses() {
        let q = parse(
            "SELECT Id, Email, Account.Industry FROM Contact WHERE (SystemModstamp = \
             2026-11-01T00:00:00.000+0000 AND Id > '0035g0000000001AAA') OR SystemModstamp > \
             2026-11-01T00:00:00Z ORDER BY SystemModstamp ASC, Id LIMIT 200",
        )
        .unwrap();
        assert_eq!(q.from, "Contact");
        assert_eq!(q.select.as_ref().unwrap()[2].0, ["Account", "Industry"]);
        assert_eq!(q.order.len(), 2);
        assert_eq!(q.limit, Some(200));
        assert!(matches!(q.filter, Some(Cond::Or(..))));
    }

    #[test]
    fn count_in_not_and_like_parse() {
        let q = parse(
            "select count() from Lead where IsConverted = false and Id not in ('a','b') \
             and NOT Email LIKE '%@gmail.com' AND CloseDate <= 2026-11-30",
        )
        .unwrap();
        assert_eq!(q.select, None);
        assert_eq!(q.from, "Lead");
    }

    #[test]
    fn malformed_queries_say_where() {
        let e = parse("SELECT Id FROM").unwrap_err();
        assert!(e.message.contains("expecting an object name"), "{e:?}");
        let e = parse("SELECT Id FROM Lead WHERE Name = ").unwrap_err();
        assert!(e.message.contains("literal"), "{e:?}");
        let e = parse("SELECT Id FROM Lead LIMIT 5 junk").unwrap_err();
        assert_eq!(e.column, 29);
        assert!(parse("SELECT Id FROM Lead WHERE Name = 'open").is_err());
    }

    #[test]
    fn comparisons_follow_salesforce() {
        use serde_json::json;
        let id = json!("0035g0000000001AAA");
        assert_eq!(
            compare(&id, &Literal::Text("0035g0000000001aaa".into()), true),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(&json!("Software"), &Literal::Text("software".into()), false),
            Some(Ordering::Equal)
        );
        let t = json!("2026-11-01T10:00:00.000+0000");
        assert_eq!(
            compare(
                &t,
                &Literal::DateTime(parse_datetime("2026-11-01T09:00:00Z").unwrap()),
                false
            ),
            Some(Ordering::Greater)
        );
        assert!(like("ann@gmail.com", "%@GMAIL.com"));
        assert!(!like("ann@gmail.co", "%@gmail.com"));
    }
}
