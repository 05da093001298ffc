//! The one road from a request to a reply, `shout::server::reply_to`, under
//! random requests, sources and limits: it never amplifies.

use std::net::SocketAddr;

use proptest::prelude::*;
use shout::policy::Policy;
use shout::server::reply_to;
use shout::transform::{Envelope, Responder};
use shout::{Mode, PolicyConfig, RateLimit};

const LOCAL: &str = "10.0.0.1:7000";

proptest! {
    /// Never amplify: at most one reply, never longer than the request,
    /// and the reply is the request transformed, whatever the source.
    #[test]
    fn never_amplifies(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        ip in any::<[u8; 4]>(),
        port in any::<u16>(),
        echo in any::<bool>(),
        max in 0usize..4096,
    ) {
        let mode = if echo { Mode::Echo } else { Mode::Upper };
        let config = PolicyConfig { rate_limit: Some(RateLimit { rate: 5.0, burst: 2, include_loopback: true, ..RateLimit::default() }), ..PolicyConfig::default() };
        let p = Policy::new(&config, max);
        let mut responder = Responder::new(mode);
        let mut buf = data.clone();
        let envelope = Envelope::from(SocketAddr::from((ip, port)));
        match reply_to(&p, &mut responder, &envelope, LOCAL.parse().unwrap(), &mut buf, p.now()) {
            Ok(reply) => {
                prop_assert!(reply.len() <= data.len());
                prop_assert!(Mode::is_reply(mode, &data, reply));
            }
            Err(_) => prop_assert_eq!(&buf, &data, "a dropped request is left untouched"),
        }
    }
}
