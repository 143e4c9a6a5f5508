//! The authorizer chain (k8s: staging/src/k8s.io/apiserver/pkg/authorization/union, and
//! authorizerfactory's privileged-group authorizer). The apiserver core runs
//! `[privileged group, RBAC]`; a Node authorizer goes in front of RBAC later.

use super::rbac::attributes::{Attributes, Decision};
use super::user::{UserInfo, SYSTEM_MASTERS};

/// One authorization mode.
pub trait Authorizer {
    fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision;
}

/// k8s: authorizerfactory.NewPrivilegedGroups(user.SystemPrivilegedGroup): members of
/// `system:masters` may do anything.
pub struct PrivilegedGroups;

impl Authorizer for PrivilegedGroups {
    fn authorize(&self, user: &UserInfo, _: &Attributes) -> Decision {
        if user.in_group(SYSTEM_MASTERS) {
            Decision::Allow(String::new())
        } else {
            Decision::NoOpinion(String::new())
        }
    }
}

/// k8s: union.New — the first Allow or Deny wins; otherwise NoOpinion with every reason, one
/// a line.
pub fn union(chain: &[&dyn Authorizer], user: &UserInfo, a: &Attributes) -> Decision {
    let mut reasons: Vec<String> = Vec::new();
    for authorizer in chain {
        match authorizer.authorize(user, a) {
            d @ (Decision::Allow(_) | Decision::Deny(_)) => return d,
            Decision::NoOpinion(r) => {
                if !r.is_empty() {
                    reasons.push(r);
                }
            }
        }
    }
    Decision::NoOpinion(reasons.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Decision);
    impl Authorizer for Fixed {
        fn authorize(&self, _: &UserInfo, _: &Attributes) -> Decision {
            self.0.clone()
        }
    }

    #[test]
    fn the_first_decision_wins_and_reasons_add_up() {
        let a = Attributes::resource("get", "", "pods", "ns", "");
        let dev = UserInfo::new("dev", &[]);
        let no = |r: &str| Fixed(Decision::NoOpinion(r.into()));
        let (a1, e1, b1) = (no("a"), no(""), no("b"));
        let allow = Fixed(Decision::Allow("ok".into()));
        let deny = Fixed(Decision::Deny("no".into()));
        let cases: Vec<(Vec<&dyn Authorizer>, Decision)> = vec![
            (vec![&a1, &allow], Decision::Allow("ok".into())),
            (vec![&deny, &allow], Decision::Deny("no".into())),
            (vec![&a1, &e1, &b1], Decision::NoOpinion("a\nb".into())),
            (vec![], Decision::NoOpinion(String::new())),
        ];
        for (chain, want) in cases {
            assert_eq!(union(&chain, &dev, &a), want);
        }
        assert!(PrivilegedGroups
            .authorize(&UserInfo::apiserver(), &a)
            .allowed());
        assert!(!PrivilegedGroups.authorize(&dev, &a).allowed());
    }
}
