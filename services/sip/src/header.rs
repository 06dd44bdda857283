//! Header names (with RFC 3261 §7.3.3 compact forms) and the ordered header list.
//!
//! The list keeps one [`Header`] per *value*: header lines that carry a
//! comma-separated list (Via, Route, Record-Route, Path, Contact) are split on
//! parse, so the topmost Via is always the first `Via` entry, and prepending or
//! removing one value never touches the others. Values are stored unfolded and
//! trimmed; typed views live in [`crate::typed`].

use std::fmt;

use crate::uri::split_outside_quotes;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. Known names compare case-insensitively and
        /// compact forms map to their full name; unknown names are kept as written.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( #[doc = $canon] $variant, )*
            /// Any other header, name as written.
            Other(String),
        }

        impl HeaderName {
            /// Canonical (full, conventionally capitalised) spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }

            /// Maps a name as it appears on the wire (any case, compact or full).
            pub fn from_wire(name: &str) -> HeaderName {
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                }
                $( if name.eq_ignore_ascii_case($canon) { return HeaderName::$variant; } )*
                HeaderName::Other(name.to_owned())
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    Contact => "Contact", b'm';
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    Path => "Path";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    ContentEncoding => "Content-Encoding", b'e';
    Supported => "Supported", b'k';
    Subject => "Subject", b's';
    Expires => "Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Allow => "Allow";
    UserAgent => "User-Agent";
    Server => "Server";
    Event => "Event", b'o';
    ReferTo => "Refer-To", b'r';
    AllowEvents => "Allow-Events", b'u';
    SessionExpires => "Session-Expires", b'x';
    ReferredBy => "Referred-By", b'b';
    AcceptContact => "Accept-Contact", b'a';
    RejectContact => "Reject-Contact", b'j';
    RequestDisposition => "Request-Disposition", b'd';
    Identity => "Identity", b'y';
    MinExpires => "Min-Expires";
    RetryAfter => "Retry-After";
    Timestamp => "Timestamp";
    Warning => "Warning";
}

impl HeaderName {
    /// Whether one line of this header may carry several comma-separated
    /// values that this library splits into separate entries.
    pub fn is_split_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Contact
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header value with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub name: HeaderName,
    /// Unfolded, trimmed value.
    pub value: String,
}

/// The ordered header list of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// Appends a header from a wire line, splitting list headers into values.
    /// An empty element in a list (`Via: a,,b`) is kept as an empty value so
    /// typed parsing reports it.
    pub(crate) fn push_wire(&mut self, name: HeaderName, value: &str) {
        if name.is_split_list() && value.contains(',') {
            for part in split_outside_quotes(value, b',') {
                self.0.push(Header {
                    name: name.clone(),
                    value: part.trim().to_owned(),
                });
            }
        } else {
            self.0.push(Header {
                name,
                value: value.to_owned(),
            });
        }
    }

    /// All entries in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Number of entries (values).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// All values of `name`, topmost first.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Number of values of `name`.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    /// Appends a value at the end of the list.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a value so it becomes the topmost value of `name`: just before
    /// the first existing value of that name, or at the very top when none
    /// exists (this is where Via, Record-Route and Path go).
    pub fn prepend(&mut self, name: HeaderName, value: impl Into<String>) {
        let pos = self.0.iter().position(|h| h.name == name).unwrap_or(0);
        self.0.insert(
            pos,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Removes and returns the topmost value of `name`.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<String> {
        let pos = self.0.iter().position(|h| &h.name == name)?;
        Some(self.0.remove(pos).value)
    }

    /// Removes every value of `name`; returns how many were removed.
    pub fn remove_all(&mut self, name: &HeaderName) -> usize {
        let before = self.0.len();
        self.0.retain(|h| &h.name != name);
        before - self.0.len()
    }

    /// Replaces all values of `name` by one value, kept at the position of the
    /// first old value (or appended).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(pos) => {
                self.0[pos].value = value;
                let mut i = 0;
                self.0.retain(|h| {
                    let keep = h.name != name || i == pos;
                    i += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Mutable access to the topmost value of `name`.
    pub fn first_mut(&mut self, name: &HeaderName) -> Option<&mut String> {
        self.0
            .iter_mut()
            .find(|h| &h.name == name)
            .map(|h| &mut h.value)
    }

    /// Mutable access to every value of `name`, topmost first.
    pub fn get_all_mut<'a>(
        &'a mut self,
        name: &'a HeaderName,
    ) -> impl Iterator<Item = &'a mut String> + 'a {
        self.0
            .iter_mut()
            .filter(move |h| &h.name == name)
            .map(|h| &mut h.value)
    }

    /// Keeps only the entries for which `f` returns true.
    pub fn retain(&mut self, f: impl FnMut(&Header) -> bool) {
        self.0.retain(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_map_to_full_names() {
        for (c, full) in [
            ("v", HeaderName::Via),
            ("F", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("c", HeaderName::ContentType),
            ("e", HeaderName::ContentEncoding),
        ] {
            assert_eq!(HeaderName::from_wire(c), full, "compact {c}");
        }
        assert_eq!(HeaderName::from_wire("call-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::from_wire("X-Foo"),
            HeaderName::Other("X-Foo".into())
        );
        assert_eq!(HeaderName::from_wire("q"), HeaderName::Other("q".into()));
    }

    #[test]
    fn prepend_goes_above_existing_values() {
        let mut h = Headers::new();
        h.push(HeaderName::CallId, "x");
        h.push(HeaderName::Via, "SIP/2.0/UDP a");
        h.prepend(HeaderName::Via, "SIP/2.0/UDP b");
        let v: Vec<_> = h.get_all(&HeaderName::Via).collect();
        assert_eq!(v, ["SIP/2.0/UDP b", "SIP/2.0/UDP a"]);
        h.prepend(HeaderName::RecordRoute, "<sip:lb;lr>");
        assert_eq!(
            h.iter().next().map(|x| &x.name),
            Some(&HeaderName::RecordRoute)
        );
        assert_eq!(
            h.remove_first(&HeaderName::Via).as_deref(),
            Some("SIP/2.0/UDP b")
        );
        assert_eq!(h.count(&HeaderName::Via), 1);
    }

    #[test]
    fn set_replaces_all_values() {
        let mut h = Headers::new();
        h.push(HeaderName::Expires, "1");
        h.push(HeaderName::CallId, "x");
        h.push(HeaderName::Expires, "2");
        h.set(HeaderName::Expires, "3");
        assert_eq!(h.get_all(&HeaderName::Expires).collect::<Vec<_>>(), ["3"]);
        assert_eq!(h.iter().next().map(|x| x.value.as_str()), Some("3"));
    }
}
