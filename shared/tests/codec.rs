//! The JSON codec against real MobileIMSDK packets, the lenient-reading rules of §1.3, and
//! round-trip properties.

use hongyan_shared::{
    DecodeError, ErrorResponse, Fingerprint, Kickout, LoginInfo, LoginResponse, Packet, PacketType,
    UserId,
};
use proptest::prelude::*;

fn vectors() -> impl Iterator<Item = (&'static str, &'static str)> {
    include_str!("vectors/wire-samples.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_once(' ').expect("direction, space, body"))
}

#[test]
fn every_captured_packet_decodes_and_re_encodes_byte_for_byte() {
    let mut count = 0;
    for (_, body) in vectors() {
        let packet = Packet::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(packet.to_json(), body);
        count += 1;
    }
    assert!(count >= 40, "the vector file lost lines: {count}");
}

#[test]
fn every_captured_payload_decodes_and_re_encodes_byte_for_byte() {
    for (_, body) in vectors() {
        let packet = Packet::decode(body.as_bytes()).unwrap();
        let Some(data) = packet.data_content.as_deref() else {
            continue;
        };
        let reencoded = match packet.kind {
            PacketType::Login => LoginInfo::decode(data).unwrap().to_json(),
            PacketType::LoginResponse => LoginResponse::decode(data).unwrap().to_json(),
            PacketType::Error => ErrorResponse::decode(data).unwrap().to_json(),
            PacketType::Kickout => Kickout::decode(data).unwrap().to_json(),
            _ => continue,
        };
        assert_eq!(reencoded, data);
    }
}

#[test]
fn error_301_embeds_the_rejected_packet() {
    let keepalive = Packet::keep_alive("ju3");
    let error = Packet::error(&ErrorResponse {
        error_code: 301,
        error_msg: Some(keepalive.to_json()),
    });
    assert_eq!(
        error.to_json(),
        r#"{"bridge":false,"type":52,"dataContent":"{\"errorCode\":301,\"errorMsg\":\"{\\\"bridge\\\":false,\\\"type\\\":1,\\\"dataContent\\\":\\\"{}\\\",\\\"from\\\":\\\"ju3\\\",\\\"to\\\":\\\"0\\\",\\\"QoS\\\":false,\\\"typeu\\\":-1,\\\"sm\\\":-1}\"}","from":"0","to":"-1","QoS":false,"typeu":-1,"sm":-1}"#
    );
}

#[test]
fn factory_packets_match_the_reference_bytes() {
    assert_eq!(
        Packet::logout("jt1").to_json(),
        r#"{"bridge":false,"type":3,"from":"jt1","to":"0","QoS":false,"typeu":-1,"sm":-1}"#
    );
    assert_eq!(
        Packet::kickout(
            "ju1",
            &Kickout {
                code: 2,
                reason: Some("admin says bye".into())
            }
        )
        .to_json(),
        r#"{"bridge":false,"type":54,"dataContent":"{\"code\":2,\"reason\":\"admin says bye\"}","from":"0","to":"ju1","QoS":false,"typeu":-1,"sm":-1}"#
    );
    assert_eq!(
        Packet::login_response("-1", LoginResponse::refused(1025)).to_json(),
        r#"{"bridge":false,"type":50,"dataContent":"{\"code\":1025,\"firstLoginTime\":-1}","from":"0","to":"-1","QoS":false,"typeu":-1,"sm":-1}"#
    );
    let mut info = LoginInfo::new("jt2", Some("tk"), Some("ex"));
    info.first_login_time = 1795892290071;
    assert_eq!(
        Packet::login(&info).to_json(),
        r#"{"bridge":false,"type":0,"dataContent":"{\"loginUserId\":\"jt2\",\"loginToken\":\"tk\",\"extra\":\"ex\",\"firstLoginTime\":1795892290071}","from":"jt2","to":"0","QoS":false,"typeu":-1,"sm":-1}"#
    );
}

#[test]
fn compact_packets_keep_what_clients_read_and_leave_out_the_rest() {
    let error = Packet::error(&ErrorResponse {
        error_code: 301,
        error_msg: None,
    });
    assert_eq!(
        error.to_compact_json(),
        br#"{"type":52,"dataContent":"{\"errorCode\":301}","from":"0","to":"-1"}"#,
        "the compact 301 of §1.4"
    );
    let answer = Packet::login_response(
        "udp5620A",
        LoginResponse {
            code: 0,
            first_login_time: 1795892657367,
        },
    );
    assert_eq!(
        answer.to_compact_json(),
        br#"{"type":50,"dataContent":"{\"code\":0,\"firstLoginTime\":1795892657367}","from":"0","to":"udp5620A"}"#
    );
    // Read back, only typeu and sm differ, which nothing reads on a framework packet.
    let back = Packet::decode(&answer.to_compact_json()).unwrap();
    assert_eq!(
        Packet {
            typeu: -1,
            sm: -1,
            ..back
        },
        answer
    );
}

#[test]
fn missing_keys_take_java_zero_values_not_factory_defaults() {
    let p = Packet::decode(br#"{"type":2,"dataContent":"min","from":"wsuser","to":"tcpuser"}"#)
        .unwrap();
    assert_eq!(
        p.to_json(),
        r#"{"bridge":false,"type":2,"dataContent":"min","from":"wsuser","to":"tcpuser","QoS":false,"typeu":0,"sm":0}"#
    );
}

#[test]
fn keys_in_any_order_and_unknown_keys_are_accepted() {
    let p = Packet::decode(
        br#"{"sm":-1,"retryCount":3,"QoS":true,"fp":"x","to":"b","from":"a","typeu":7,"type":2,"dataContent":"hi","extra":{"nested":[1,2]}}"#,
    )
    .unwrap();
    assert_eq!(p.kind, PacketType::CommonData);
    assert_eq!(p.qos_fingerprint(), Some(&Fingerprint::from("x")));
    assert_eq!(p.typeu, 7);
}

#[test]
fn gson_coercions_are_accepted() {
    let p = Packet::decode(
        br#"{"type":"2","from":123,"to":"0","QoS":"true","typeu":2.0,"sm":"17","bridge":null,"fp":null}"#,
    )
    .unwrap();
    assert_eq!(p.kind, PacketType::CommonData);
    assert_eq!(p.from, Some(UserId::from("123")));
    assert!(p.qos);
    assert_eq!((p.typeu, p.sm, p.bridge, p.fp), (2, 17, false, None));
}

#[test]
fn malformed_packets_are_typed_errors() {
    let cases: &[&[u8]] = &[
        br#"{"type":2,"dataContent":{"obj":1}}"#,
        br#"{"type":2,"QoS":1}"#,
        br#"{"type":2.5}"#,
        br#"{"type":99999999999}"#,
        br#"{"type":1} trailing"#,
        br#"{"type":1"#,
        br#"[1,2]"#,
        br#""just a string""#,
        b"\xff\xfe",
        b"{\"from\":\"\xff\"}",
    ];
    for case in cases {
        assert!(
            Packet::decode(case).is_err(),
            "{:?} should be refused",
            String::from_utf8_lossy(case)
        );
    }
    assert!(matches!(Packet::decode(b""), Err(DecodeError::Empty)));
    assert!(matches!(Packet::decode(b"  \n"), Err(DecodeError::Empty)));
    assert!(matches!(Packet::decode(b"null"), Err(DecodeError::Null)));
    assert!(matches!(
        Packet::decode(b"[]"),
        Err(DecodeError::NotAnObject)
    ));
}

#[test]
fn html_unsafe_and_control_characters_use_gson_escapes() {
    let p = Packet::common_data(
        "a",
        "b",
        "<a href='x'>&=</a>\u{1}\u{2028}\u{2029}/é😀",
        None,
        -1,
    );
    let json = p.to_json();
    assert!(json.contains(
        r#""dataContent":"\u003ca href\u003d\u0027x\u0027\u003e\u0026\u003d\u003c/a\u003e\u0001\u2028\u2029/é😀""#
    ));
    assert_eq!(Packet::decode(json.as_bytes()).unwrap(), p);
}

#[test]
fn login_payload_without_user_id_decodes_to_none() {
    let info = LoginInfo::decode(r#"{"loginToken":"t"}"#).unwrap();
    assert_eq!(info.login_user_id, None);
    assert_eq!(info.first_login_time, 0);
    assert!(LoginInfo::decode("not json").is_err());
}

fn any_packet() -> impl Strategy<Value = Packet> {
    let text = || proptest::option::of(any::<String>());
    (
        any::<bool>(),
        prop_oneof![
            Just(0),
            Just(1),
            Just(2),
            Just(3),
            Just(4),
            Just(5),
            50..=54,
            any::<i32>()
        ],
        text(),
        text(),
        text(),
        text(),
        any::<bool>(),
        any::<i32>(),
        any::<i64>(),
    )
        .prop_map(
            |(bridge, code, data_content, from, to, fp, qos, typeu, sm)| Packet {
                bridge,
                kind: PacketType::from_code(code),
                data_content,
                from: from.map(UserId::from),
                to: to.map(UserId::from),
                fp: fp.map(Fingerprint::from),
                qos,
                typeu,
                sm,
                seq: None,
            },
        )
}

proptest! {
    #[test]
    fn packets_round_trip(packet in any_packet()) {
        let json = packet.to_json();
        prop_assert_eq!(Packet::decode(json.as_bytes()).unwrap(), packet);
        // And the output is valid standard JSON, not only something our reader accepts.
        prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    }

    #[test]
    fn compact_packets_read_back_as_the_packet_but_typeu_and_sm(packet in any_packet()) {
        let compact = packet.to_compact_json();
        let back = Packet::decode(&compact).unwrap();
        prop_assert!(compact.len() <= packet.to_json().len());
        prop_assert_eq!(Packet { typeu: packet.typeu, sm: packet.sm, ..back }, packet);
    }

    #[test]
    fn payloads_round_trip(
        user in proptest::option::of(any::<String>()),
        token in proptest::option::of(any::<String>()),
        extra in proptest::option::of(any::<String>()),
        t in any::<i64>(),
        code in any::<i32>(),
    ) {
        let info = LoginInfo { login_user_id: user.map(UserId::from), login_token: token.clone(), extra, first_login_time: t };
        prop_assert_eq!(LoginInfo::decode(&info.to_json()).unwrap(), info);
        let response = LoginResponse { code, first_login_time: t };
        prop_assert_eq!(LoginResponse::decode(&response.to_json()).unwrap(), response);
        let error = ErrorResponse { error_code: code, error_msg: token.clone() };
        prop_assert_eq!(ErrorResponse::decode(&error.to_json()).unwrap(), error);
        let kickout = Kickout { code, reason: token };
        prop_assert_eq!(Kickout::decode(&kickout.to_json()).unwrap(), kickout);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Packet::decode(&bytes);
    }
}

proptest! {
    #[test]
    fn frames_survive_any_split_of_the_byte_stream(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..8),
        cuts in proptest::collection::vec(1usize..64, 1..16),
    ) {
        use bytes::BytesMut;
        use hongyan_shared::FrameCodec;
        let codec = FrameCodec::new(300);
        let mut wire = BytesMut::new();
        for body in &bodies {
            codec.encode(body, &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &wire[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
            rest = tail;
            buf.extend_from_slice(chunk);
            while let Some(body) = codec.decode(&mut buf).unwrap() {
                got.push(body.to_vec());
            }
        }
        prop_assert_eq!(got, bodies);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let codec = hongyan_shared::FrameCodec::default();
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }
}
