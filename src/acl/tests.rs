//! Rules, checks and descriptions against what Redis 7.0.15 answers for the same rules.

use super::{command_id, name_of, Acl, Command, Denied, RuleError, User, COUNT, NO_ID};

fn user(rules: &[&str]) -> User {
    let mut user = User::new(b"u");
    for rule in rules {
        user.apply(rule.as_bytes()).unwrap();
    }
    user
}

#[test]
fn the_table_is_sorted_and_ids_round_trip() {
    for id in 0..COUNT as u16 {
        assert_eq!(command_id(name_of(id)), id);
        if id > 0 {
            assert!(name_of(id - 1) < name_of(id));
        }
    }
    assert_eq!(command_id("put"), command_id("set"));
    assert_eq!(command_id("delex"), command_id("getdel"));
    assert_eq!(command_id("digest"), command_id("get"));
    assert_eq!(command_id("help"), NO_ID);
    assert_eq!(super::find(b"CONFIG|GET"), Some(command_id("config|get")));
}

#[test]
fn descriptions_match_redis() {
    // Each line is what redis-server 7.0.15's ACL LIST printed for the same rules, with single
    // commands in table order (Redis prints those in its hash table's order).
    let cases: &[(&[&str], &str)] = &[
        (&["reset"], "off sanitize-payload resetchannels -@all"),
        (
            &["%RW", "%R~", "%W~a", "%RW~a", "%R~b"],
            "off ~ ~a %R~b resetchannels -@all",
        ),
        (
            &["on", "()"],
            "on resetchannels -@all (resetchannels -@all)",
        ),
        (
            &["+@all", "-@read", "+get", "-@admin"],
            "off resetchannels +@all -@admin -@read +get",
        ),
        (
            &["+@all", "-config|get"],
            "off resetchannels +@all -config|get",
        ),
        (&["+select|0"], "off resetchannels -@all +select|0"),
        (
            &["on", "nopass", "+@all", "-@dangerous", "~*"],
            "on nopass ~* resetchannels +@all -@dangerous",
        ),
    ];
    for (rules, expected) in cases {
        assert_eq!(
            String::from_utf8_lossy(&user(rules).describe()),
            *expected,
            "{rules:?}"
        );
    }
}

#[test]
fn bad_rules_are_refused_with_redis_errors() {
    let cases: &[(&str, RuleError)] = &[
        ("%~foo", RuleError::Syntax),
        ("%Rx~a", RuleError::Syntax),
        ("%RR~a", RuleError::Syntax),
        ("~a b", RuleError::Syntax),
        ("#abc", RuleError::BadHash),
        ("+config|get|x", RuleError::FirstArgOfSubcommand),
        ("+select|", RuleError::Syntax),
        ("+nosuch", RuleError::UnknownName),
        ("-@nosuch", RuleError::UnknownName),
        ("<nopass", RuleError::NoSuchPassword),
        ("bogus", RuleError::Syntax),
    ];
    for (rule, error) in cases {
        assert_eq!(
            User::new(b"u").apply(rule.as_bytes()),
            Err(*error),
            "{rule}"
        );
    }
    let mut u = user(&["~*"]);
    assert_eq!(u.apply(b"~a"), Err(RuleError::KeysAfterAll));
    let mut u = user(&["&*"]);
    assert_eq!(u.apply(b"&a"), Err(RuleError::ChannelsAfterAll));
}

fn check(rules: &[&str], name: &str, keys: (i32, i32, i32), args: &[&str]) -> Result<(), Denied> {
    let mut acl = Acl::default();
    let mut u = user(rules);
    u.name = b"x".to_vec();
    let handle = acl.put(u);
    let command = Command::named(name).with_keys(keys);
    acl.check(handle, &command, args)
}

#[test]
fn checks_commands_keys_and_selectors() {
    let k = (1, 1, 1);
    let r = ["~app:*", "%R~ro:*", "+@read", "+set", "-get", "(~x* +del)"];
    assert_eq!(check(&r, "get", k, &["get", "app:1"]), Err(Denied::Command));
    assert_eq!(check(&r, "strlen", k, &["strlen", "ro:1"]), Ok(()));
    assert_eq!(
        check(&r, "set", k, &["set", "ro:1", "v"]),
        Err(Denied::Key(1))
    );
    assert_eq!(check(&r, "set", k, &["set", "app:1", "v"]), Ok(()));
    assert_eq!(check(&r, "del", (1, -1, 1), &["del", "x1", "x2"]), Ok(()));
    assert_eq!(
        check(&r, "del", (1, -1, 1), &["del", "x1", "app:1"]),
        Err(Denied::Key(2))
    );
    // %W~ allows SET but not SET ... GET, which also reads.
    let w = ["%W~*", "+@all"];
    assert_eq!(check(&w, "set", k, &["set", "k", "v"]), Ok(()));
    assert_eq!(
        check(&w, "set", k, &["set", "k", "v", "get"]),
        Err(Denied::Key(1))
    );
    assert_eq!(check(&w, "exists", k, &["exists", "k"]), Ok(()));
    // RENAME reads and deletes its source, writes its destination.
    let rename = ["%R~a", "%W~*", "+@all"];
    assert_eq!(
        check(&rename, "rename", (1, 2, 1), &["rename", "a", "b"]),
        Err(Denied::Key(1))
    );
    let c = ["&news.*", "+@all"];
    assert_eq!(
        check(&c, "publish", (0, 0, 0), &["publish", "news.1", "m"]),
        Ok(())
    );
    assert_eq!(
        check(&c, "publish", (0, 0, 0), &["publish", "x", "m"]),
        Err(Denied::Channel(1))
    );
    assert_eq!(
        check(&c, "psubscribe", (0, 0, 0), &["psubscribe", "news.*"]),
        Ok(())
    );
    assert_eq!(
        check(&c, "psubscribe", (0, 0, 0), &["psubscribe", "news.1"]),
        Err(Denied::Channel(1))
    );
    // First-arg rules and AUTH, which anyone may run.
    let s = ["+select|0"];
    assert_eq!(check(&s, "select", (0, 0, 0), &["select", "0"]), Ok(()));
    assert_eq!(
        check(&s, "select", (0, 0, 0), &["select", "1"]),
        Err(Denied::Command)
    );
    assert_eq!(check(&[], "auth", (0, 0, 0), &["auth", "a", "b"]), Ok(()));
}

#[test]
fn passwords_are_hashed_and_checked() {
    let u = user(&["on", ">pw", ">other"]);
    assert!(u.accepts(b"pw") && u.accepts(b"other") && !u.accepts(b"Pw"));
    let described = String::from_utf8_lossy(&u.describe()).into_owned();
    assert!(!described.contains("pw "), "{described}");
    let u = user(&["off", ">pw"]);
    assert!(!u.accepts(b"pw"), "a user that is off cannot log in");
    let u = user(&["on", ">pw", "<pw"]);
    assert!(!u.accepts(b"pw"));
    let u = user(&["on", "nopass"]);
    assert!(u.accepts(b"anything"));
}

#[test]
fn a_deleted_users_handle_goes_stale() {
    let mut acl = Acl::default();
    let alice = acl.put(user(&["on", "+@all", "~*", "&*"]));
    assert!(acl.unrestricted(alice));
    acl.remove(b"u");
    assert!(!acl.unrestricted(alice));
    let bob = acl.put(User::new(b"bob"));
    assert_ne!(alice, bob, "the slot is reused under a new generation");
    assert!(acl.get(alice).is_none());
}

#[test]
fn key_patterns_match_as_the_glob_matcher_does() {
    // Each pattern kind (exact, short prefix, long prefix, glob) against keys shorter and
    // longer than a word, empty, and differing in the first and last byte of the prefix.
    let patterns = [
        "",
        "k",
        "key:*",
        "*",
        "k*",
        "key:0000*",
        "a-long-prefix:*",
        "key:?",
        "key:[ab]*",
        "x\\*",
        "12345678*",
        "1234567*",
    ];
    let keys = [
        "",
        "k",
        "key:",
        "key:1",
        "key:a",
        "Key:1",
        "key;1",
        "key:00001234",
        "a-long-prefix:",
        "a-long-prefix:x",
        "a-long-prefiX:x",
        "x*",
        "xx",
        "12345678",
        "1234567",
        "123456789",
        "1234567x",
    ];
    for pattern in patterns {
        let rules = [format!("~{pattern}"), "+@all".to_string()];
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        for key in keys {
            let expected = if crate::store::glob_match(pattern.as_bytes(), key.as_bytes()) {
                Ok(())
            } else {
                Err(Denied::Key(1))
            };
            assert_eq!(
                check(&rules, "get", (1, 1, 1), &["get", key]),
                expected,
                "~{pattern} against {key:?}"
            );
        }
    }
}
