//! Tests of the `/metrics` endpoint's answers, without sockets.

use super::*;

/// The whole response `reply` makes, its streamed body drained.
fn respond<B: Body, P: Body>(head: &[u8], handlers: &Handlers<'_, B, P>) -> Vec<u8> {
    let Reply { mut out, mut rest } = reply(head, handlers);
    let mut piece = Vec::new();
    while let Some(r) = &mut rest {
        let more = r.next(&mut piece);
        out.extend_from_slice(&piece);
        if !more {
            rest = None;
        }
    }
    out
}

#[test]
fn prometheus_text_has_counters_by_worker_and_reason() {
    let counts =
        Counts { received: 7, answered: 4, rate_limited: 1, total_limited: 2, ..Counts::default() };
    let text = prometheus(&[("127.0.0.1:8080".parse().unwrap(), counts)], 12.5);
    assert!(
        text.contains(r#"shout_received_datagrams_total{worker="0",addr="127.0.0.1:8080"} 7"#),
        "{text}"
    );
    assert!(text.contains(r#"shout_dropped_datagrams_total{worker="0",addr="127.0.0.1:8080",reason="rate_limited"} 1"#), "{text}");
    assert!(text.contains(r#"shout_dropped_datagrams_total{worker="0",addr="127.0.0.1:8080",reason="total_limited"} 2"#), "{text}");
    assert!(text.contains("shout_answers_per_second 12.5"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[test]
fn requests_get_the_status_their_head_deserves() {
    let render = || "# EOF\n".to_string();
    let handlers = Handlers { render: &render, protobuf: None::<Protobuf<'_>>, reload: None };
    let status = |head: &str| {
        let out = String::from_utf8(respond(head.as_bytes(), &handlers)).unwrap();
        out.split(' ').nth(1).unwrap().to_string()
    };
    assert_eq!(status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), "200");
    assert_eq!(status("GET /metrics?x=1 HTTP/1.0\n\n"), "200");
    assert_eq!(status("GET /other HTTP/1.1\r\n\r\n"), "404");
    assert_eq!(status("POST /metrics HTTP/1.1\r\n\r\n"), "405");
    assert_eq!(status("DELETE /metrics HTTP/1.1\r\n\r\n"), "405");
    assert_eq!(status("GET /metrics\r\n\r\n"), "400");
    assert_eq!(status("GET /metrics SPDY/3\r\n\r\n"), "400");
    assert_eq!(status("\x00\x01\r\n\r\n"), "400");
    assert_eq!(
        status("POST /-/reload HTTP/1.1\r\n\r\n"),
        "405",
        "no reload hook: GET and HEAD only"
    );
    let head = String::from_utf8(respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &handlers)).unwrap();
    assert!(head.ends_with("Content-Length: 6\r\nConnection: close\r\n\r\n"), "{head:?}");
    assert_eq!(head_end(b"GET / HTTP/1.0\r\nA: b\r\n\r\nbody"), Some(24));
    assert_eq!(head_end(b"GET / HTTP/1.0\r\nA: b\r\n"), None);
}

#[test]
fn reload_is_a_post_to_its_own_path_when_a_hook_is_given() {
    let render = || "# EOF\n".to_string();
    let calls = std::cell::Cell::new(0);
    let ok = || {
        calls.set(calls.get() + 1);
        Ok("reloaded: 3 targets".to_string())
    };
    let handlers = Handlers { render: &render, protobuf: None::<Protobuf<'_>>, reload: Some(&ok) };
    let answer = |head: &str| String::from_utf8(respond(head.as_bytes(), &handlers)).unwrap();
    let out = answer("POST /-/reload HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK") && out.ends_with("reloaded: 3 targets\n"), "{out}");
    assert!(answer("PUT /-/reload HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert_eq!(calls.get(), 2);
    let out = answer("GET /-/reload HTTP/1.1\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 405") && out.contains("Allow: POST, PUT"), "{out}");
    assert!(answer("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(answer("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert_eq!(calls.get(), 2, "only POST and PUT reload");
    let fail = || Err("p.yaml:3:5: targets[0]: unknown field `x`".to_string());
    let handlers =
        Handlers { render: &render, protobuf: None::<Protobuf<'_>>, reload: Some(&fail) };
    let out = String::from_utf8(respond(b"POST /-/reload HTTP/1.1\r\n\r\n", &handlers)).unwrap();
    assert!(out.starts_with("HTTP/1.1 500") && out.contains("unknown field"), "{out}");
}

/// A body of `n` pieces of `PIECE` bytes of one letter each.
struct Pieces(u8, u8);

impl Body for Pieces {
    fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> bool {
        out.extend(std::iter::repeat_n(b'a' + self.0, want));
        self.0 += 1;
        self.0 < self.1
    }
}

#[test]
fn a_long_body_streams_chunked_or_to_the_close_and_a_short_one_has_a_length() {
    let render = || Pieces(0, 3);
    let handlers = Handlers { render: &render, protobuf: None::<Protobuf<'_>>, reload: None };
    let out = respond(b"GET /metrics HTTP/1.1\r\n\r\n", &handlers);
    let (head, body) = out.split_at(out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
    let head = String::from_utf8_lossy(head);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    let mut rest = body;
    let mut decoded = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let len = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        rest = &rest[eol + 2..];
        if len == 0 {
            assert_eq!(rest, b"\r\n", "the last chunk ends the body");
            break;
        }
        decoded.extend_from_slice(&rest[..len]);
        assert_eq!(&rest[len..len + 2], b"\r\n");
        rest = &rest[len + 2..];
    }
    assert_eq!(decoded.len(), 3 * PIECE);
    assert!(decoded[2 * PIECE..].iter().all(|&b| b == b'c'));

    let out = respond(b"GET /metrics HTTP/1.0\r\n\r\n", &handlers);
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(!head.contains("Transfer-Encoding") && !head.contains("Content-Length"), "{head}");
    assert_eq!(body.len(), 3 * PIECE, "HTTP/1.0: the body runs to the close");

    let out = String::from_utf8(respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &handlers)).unwrap();
    assert!(out.ends_with("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"), "{out}");

    let render = || Pieces(0, 1);
    let handlers = Handlers { render: &render, protobuf: None::<Protobuf<'_>>, reload: None };
    let out = String::from_utf8(respond(b"GET /metrics HTTP/1.1\r\n\r\n", &handlers)).unwrap();
    assert!(out.contains(&format!("Content-Length: {PIECE}\r\n")), "one piece: a length");
}

#[test]
fn a_scrape_preferring_protobuf_gets_it_when_there_is_a_renderer() {
    let render = || "# EOF\n".to_string();
    let protobuf = || vec![0u8, 1, 2];
    let with = Handlers { render: &render, protobuf: Some(&protobuf), reload: None };
    let without = Handlers { render: &render, protobuf: None::<Protobuf<'_>>, reload: None };
    let proto = "GET /metrics HTTP/1.1\r\nAccept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited\r\n\r\n";
    let out = respond(proto.as_bytes(), &with);
    let want = format!("Content-Type: {}\r\nContent-Length: 3\r\n", accept::PROTOBUF);
    assert!(out.ends_with(b"\r\n\r\n\x00\x01\x02"), "{out:?}");
    assert!(String::from_utf8_lossy(&out).contains(&want), "{out:?}");
    let head = respond(proto.replacen("GET", "HEAD", 1).as_bytes(), &with);
    assert!(head.ends_with(b"Connection: close\r\n\r\n"), "{head:?}");
    let text = respond(b"GET /metrics HTTP/1.1\r\n\r\n", &with);
    assert_eq!(text, respond(b"GET /metrics HTTP/1.1\r\n\r\n", &without));
    assert_eq!(respond(proto.as_bytes(), &without), text, "no renderer: the text");

    // A protobuf page longer than a piece streams as the text does.
    let pieces = || Pieces(0, 3);
    let streamed = Handlers { render: &render, protobuf: Some(&pieces), reload: None };
    let out = respond(proto.as_bytes(), &streamed);
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..at]);
    assert!(head.contains(&format!("Content-Type: {}\r\n", accept::PROTOBUF)), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(out.ends_with(b"\r\n0\r\n\r\n"), "the last chunk ends it");
    assert_eq!(out[at..].iter().filter(|&&b| b == b'c').count(), PIECE, "all three pieces");
}
