//! DNS responses as the resolver takes them, on any bytes: checked against the question
//! (the one the bytes carry, so that a well-formed response gets through) and interpreted,
//! never a panic. Records are of the type asked, at least one; TTLs are within the caps
//! (a day, five minutes for negative answers). A response to another id is refused. The query
//! mq would send for the same question parses back to that question.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_core::fuzzing::{DnsAnswer, dns_query, dns_question, dns_response};

const DAY: u32 = 86_400;
const NEGATIVE: u32 = 300;

fuzz_target!(|bytes: &[u8]| {
    let Some((id, name, rtype)) = dns_question(bytes) else {
        // Not a DNS message: refused as one to any query.
        assert!(dns_response(bytes, 1, "example.org.", 15).is_err());
        return;
    };
    match dns_response(bytes, id, &name, rtype) {
        Ok(DnsAnswer::Records { types, ttl }) => {
            assert!(!types.is_empty());
            assert!(types.iter().all(|&t| t == rtype), "{types:?} for {rtype}");
            assert!(ttl <= DAY);
        }
        Ok(DnsAnswer::Alias { ttl }) => assert!(ttl <= DAY),
        Ok(DnsAnswer::NxDomain { ttl } | DnsAnswer::NoData { ttl }) => assert!(ttl <= NEGATIVE),
        Err(_) => {}
    }
    assert!(dns_response(bytes, id.wrapping_add(1), &name, rtype).is_err());

    if let Some((spelled, query)) = dns_query(id, &name, rtype) {
        assert_eq!(dns_question(&query), Some((id, spelled, rtype)));
    }
});
