//! RFC 4475 torture messages: each fixture in `tests/rfc4475/` either parses
//! and validates with the values the RFC describes, or is rejected with the
//! error the RFC expects (parse error for framing/start-line problems,
//! validation error for header-level problems a proxy must answer with 4xx).
//!
//! Fixtures were typed in from the RFC 4475 text with CRLF line ends; the
//! RFC's `<hex>` and `<repeat>` notations are expanded. Deviations: `mpart01`
//! is our own multipart message with a binary part (same purpose), `multi01`
//! declares the length of its body so that the duplicate headers, not the
//! length, are what gets it rejected.

use sip::{Contact, Host, Message, Method, ParseError, Scheme};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/rfc4475/{name}.sip", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn valid(name: &str) -> Message {
    let m = Message::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name} must parse: {e}"));
    if let Err(e) = m.validate() {
        panic!("{name} must validate: {e}");
    }
    // Whatever we accept we can write back and read again; the second
    // serialization equals the first (the first may add Content-Length).
    let wire = m.to_bytes();
    let again = Message::parse(&wire).unwrap_or_else(|e| panic!("{name} re-parse: {e}"));
    assert_eq!(again.to_bytes(), wire, "{name} round trip");
    assert_eq!(again.body(), m.body(), "{name} body round trip");
    m
}

fn request(name: &str) -> sip::Request {
    match valid(name) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{name} is a request"),
    }
}

fn parse_rejected(name: &str) -> ParseError {
    match Message::parse(&fixture(name)) {
        Ok(m) => panic!("{name} must be rejected by the parser, got {m:?}"),
        Err(e) => e,
    }
}

fn validate_rejected(name: &str) -> ParseError {
    let m = Message::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name} must parse: {e}"));
    m.validate()
        .expect_err(&format!("{name} must fail validation"))
}

// ---- 3.1.1 valid messages ----

#[test]
fn wsinv_short_tortuous_invite() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert!(r.uri.params.contains("unknownparam"));
    let vias = r.headers.vias().unwrap();
    let hosts: Vec<String> = vias.iter().map(|v| v.host.to_string()).collect();
    assert_eq!(
        hosts,
        ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    );
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(r.headers.max_forwards().unwrap(), Some(68));
    assert_eq!(r.headers.cseq().unwrap().seq, 9);
    assert_eq!(r.headers.to().unwrap().tag(), Some("1918181833n"));
    let from = r.headers.from().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display.as_deref(), Some(r#""J Rosenberg \\\"""#));
    assert_eq!(r.headers.get(&sip::HeaderName::Subject), Some(""));
    assert_eq!(
        r.headers
            .get(&sip::HeaderName::Other("NewFangledHeader".into())),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers.get(&sip::HeaderName::Other(
            "UnknownHeaderWithUnusualValue".into()
        )),
        Some(";;,,;;,;")
    );
    let routes = r.headers.routes().unwrap();
    assert!(routes[0].uri.is_loose_router());
    let Contact::Addr(c) = &r.headers.contacts().unwrap()[0] else {
        panic!("star")
    };
    assert_eq!(c.params.get("q"), Some("0.33"));
    assert_eq!(c.params.get("newparam"), Some("newvalue"));
    assert!(c.params.contains("secondparam"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = request("intmeth");
    assert_eq!(
        r.method,
        Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    assert_eq!(r.uri.host, Host::Name("example.com".into()));
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK-.!%66*_+`'~")
    );
    assert_eq!(r.headers.from().unwrap().tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        r.headers.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(r.headers.max_forwards().unwrap(), Some(255));
}

#[test]
fn esc01_valid_percent_escaping() {
    let r = request("esc01");
    assert_eq!(r.uri.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(r.uri.host, Host::Name("example.net".into()));
    let Contact::Addr(c) = &r.headers.contacts().unwrap()[0] else {
        panic!("star")
    };
    assert!(c.uri.params.contains("%6C%72"));
}

#[test]
fn escnull_escaped_nulls() {
    let r = request("escnull");
    assert_eq!(r.headers.contacts().unwrap().len(), 2);
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    let r = request("esc02");
    assert_eq!(r.method, Method::Extension("RE%47IST%45R".into()));
    // C%6Fntact is an unknown header, not a Contact.
    assert_eq!(r.headers.contacts().unwrap().len(), 2);
}

#[test]
fn lwsdisp_no_space_before_angle() {
    let r = request("lwsdisp");
    assert_eq!(r.headers.from().unwrap().display.as_deref(), Some("caller"));
}

#[test]
fn longreq_long_values_and_34_vias() {
    let r = request("longreq");
    let vias = r.headers.vias().unwrap();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, Host::Name("sip33.example.com".into()));
    assert_eq!(vias[33].received(), Some("192.0.2.5"));
    assert_eq!(r.headers.to().unwrap().uri.port, Some(6000));
}

#[test]
fn dblreq_extra_octets_after_content_length_are_ignored() {
    let r = request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
}

#[test]
fn semiuri_semicolon_in_user_part() {
    let r = request("semiuri");
    assert_eq!(r.uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert!(r.uri.params.is_empty());
}

#[test]
fn transports_varied_and_unknown() {
    let r = request("transports");
    let t: Vec<String> = r
        .headers
        .vias()
        .unwrap()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn mpart01_binary_multipart_body_kept_byte_exact() {
    let raw = fixture("mpart01");
    let r = request("mpart01");
    assert!(raw.ends_with(&r.body));
    assert!(
        std::str::from_utf8(&r.body).is_err(),
        "body has binary octets"
    );
}

#[test]
fn unreason_and_noreason_status_lines() {
    let Message::Response(r) = valid("unreason") else {
        panic!("response")
    };
    assert_eq!(r.status, 200);
    assert!(r.reason.contains("простое"));
    let Message::Response(r) = valid("noreason") else {
        panic!("response")
    };
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
}

// ---- 3.1.2 invalid messages ----

#[test]
fn badinv01_extraneous_separators_rejected() {
    assert!(matches!(
        validate_rejected("badinv01"),
        ParseError::HeaderValue { .. }
    ));
}

#[test]
fn clerr_content_length_larger_than_message_rejected() {
    assert!(matches!(
        parse_rejected("clerr"),
        ParseError::BodyLength { declared: 9999, .. }
    ));
}

#[test]
fn ncl_negative_content_length_rejected() {
    assert!(
        matches!(parse_rejected("ncl"), ParseError::HeaderValue { header, .. } if header == "Content-Length")
    );
}

#[test]
fn scalar02_overlarge_request_scalars_rejected() {
    let m = Message::parse(&fixture("scalar02")).unwrap();
    let h = m.headers();
    assert!(h.cseq().is_err());
    assert!(h.max_forwards().is_err());
    assert!(h.expires().is_err());
    assert!(m.validate().is_err());
}

#[test]
fn scalarlg_overlarge_response_scalars_rejected() {
    assert!(
        matches!(validate_rejected("scalarlg"), ParseError::HeaderValue { header, .. } if header == "CSeq")
    );
}

#[test]
fn quotbal_unterminated_quote_rejected() {
    assert!(
        matches!(validate_rejected("quotbal"), ParseError::HeaderValue { header, .. } if header == "To")
    );
}

#[test]
fn request_line_torture_rejected_by_parser() {
    for name in ["ltgtruri", "lwsruri", "lwsstart", "trws", "badvers"] {
        let e = parse_rejected(name);
        assert!(
            matches!(e, ParseError::StartLine { .. } | ParseError::Uri { .. }),
            "{name}: {e}"
        );
    }
}

#[test]
fn escruri_headers_in_request_uri_rejected() {
    assert!(matches!(
        validate_rejected("escruri"),
        ParseError::Uri { .. }
    ));
}

#[test]
fn baddate_is_forwardable() {
    request("baddate");
}

#[test]
fn regbadct_unbracketed_contact_with_headers_rejected() {
    let m = Message::parse(&fixture("regbadct")).unwrap();
    assert!(m.headers().contacts().is_err());
}

#[test]
fn badaspec_and_baddn_rejected() {
    assert!(
        matches!(validate_rejected("badaspec"), ParseError::HeaderValue { header, .. } if header == "To")
    );
    assert!(
        matches!(validate_rejected("baddn"), ParseError::HeaderValue { header, .. } if header == "From")
    );
}

#[test]
fn cseq_method_mismatch_rejected() {
    for name in ["mismatch01", "mismatch02"] {
        assert!(
            matches!(validate_rejected(name), ParseError::HeaderValue { header, .. } if header == "CSeq"),
            "{name}"
        );
    }
}

#[test]
fn bigcode_overlarge_status_rejected() {
    assert!(matches!(
        parse_rejected("bigcode"),
        ParseError::StartLine { .. }
    ));
}

// ---- 3.2 transaction layer / 3.3 application layer / 3.4 backward compatibility ----

#[test]
fn insuf_missing_required_headers_rejected() {
    assert!(matches!(validate_rejected("insuf"), ParseError::Missing(_)));
}

#[test]
fn unknown_request_uri_schemes_parse_for_416() {
    let r = request("unkscm");
    assert_eq!(r.uri.scheme, Scheme::Other("nobodyknowsthisscheme".into()));
    let r = request("novelsc");
    assert_eq!(r.uri.scheme, Scheme::Other("soap.beep".into()));
    assert_eq!(r.uri.opaque.as_deref(), Some("//192.0.2.103:3002"));
}

#[test]
fn unksm2_unknown_schemes_in_headers_accepted() {
    let r = request("unksm2");
    assert_eq!(
        r.headers.to().unwrap().uri.scheme,
        Scheme::Other("isbn".into())
    );
}

#[test]
fn bext01_require_headers_readable() {
    let r = request("bext01");
    assert_eq!(
        r.headers.get(&sip::HeaderName::ProxyRequire),
        Some("noProxiesSupportThis, norDoAnyProxiesSupportThis")
    );
}

#[test]
fn invut_sdp01_regaut01_accepted() {
    assert_eq!(request("invut").body.len(), 40);
    request("sdp01");
    let r = request("regaut01");
    assert_eq!(
        r.headers.authorization().unwrap()[0].scheme,
        "NoOneKnowsThisScheme"
    );
}

#[test]
fn multi01_duplicate_single_value_headers_rejected() {
    assert!(matches!(
        validate_rejected("multi01"),
        ParseError::HeaderValue { .. }
    ));
}

#[test]
fn mcl01_conflicting_content_lengths_rejected() {
    assert!(
        matches!(parse_rejected("mcl01"), ParseError::HeaderValue { header, .. } if header == "Content-Length")
    );
}

#[test]
fn bcast_response_parses_with_both_vias() {
    let Message::Response(r) = valid("bcast") else {
        panic!("response")
    };
    assert_eq!(
        r.headers.vias().unwrap()[1].host.to_string(),
        "255.255.255.255"
    );
}

#[test]
fn zeromf_max_forwards_zero_is_visible() {
    assert_eq!(request("zeromf").headers.max_forwards().unwrap(), Some(0));
}

#[test]
fn contact_param_placement_cparam01_cparam02_regescrt() {
    let Contact::Addr(c) = request("cparam01").headers.contacts().unwrap().remove(0) else {
        panic!()
    };
    assert!(c.params.contains("unknownparam") && c.uri.params.is_empty());
    let Contact::Addr(c) = request("cparam02").headers.contacts().unwrap().remove(0) else {
        panic!()
    };
    assert!(c.uri.params.contains("unknownparam") && c.params.is_empty());
    let Contact::Addr(c) = request("regescrt").headers.contacts().unwrap().remove(0) else {
        panic!()
    };
    assert_eq!(
        c.uri.headers.as_deref(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
}

#[test]
fn inv2543_rfc2543_syntax_accepted() {
    let r = request("inv2543");
    assert_eq!(r.headers.top_via().unwrap().branch(), None);
    assert_eq!(r.headers.max_forwards().unwrap(), None);
    assert!(!r.body.is_empty());
}
