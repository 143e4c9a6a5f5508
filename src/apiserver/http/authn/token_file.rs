//! The static token file (k8s: kube-apiserver --token-auth-file,
//! apiserver/pkg/authentication/token/tokenfile): CSV lines `token,user,uid[,"group1,group2"]`.

use std::collections::HashMap;

use futures::future::LocalBoxFuture;

use super::TokenAuthenticator;
use crate::auth::UserInfo;

/// The users of a token file, by token.
#[derive(Debug, Default)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    pub fn read(path: &std::path::Path) -> Result<TokenFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("token file {}: {e}", path.display()))
    }

    /// k8s: tokenfile.NewCSV: at least three columns; empty tokens are skipped; a later
    /// duplicate wins.
    pub fn parse(text: &str) -> Result<TokenFile, String> {
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record = csv_record(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            if record.len() < 3 {
                return Err(format!(
                    "line {}: must have at least 3 columns (token, user name, user uid), found {}",
                    n + 1,
                    record.len()
                ));
            }
            if record[0].is_empty() {
                tracing::warn!("empty token in the token file, line {}: skipped", n + 1);
                continue;
            }
            let mut user = UserInfo {
                name: record[1].clone(),
                uid: record[2].clone(),
                ..UserInfo::default()
            };
            if let Some(groups) = record.get(3) {
                user.groups = groups.split(',').map(str::to_string).collect();
            }
            tokens.insert(record[0].clone(), user);
        }
        Ok(TokenFile { tokens })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl TokenAuthenticator for TokenFile {
    fn authenticate<'a>(&'a self, token: &'a str) -> LocalBoxFuture<'a, Option<UserInfo>> {
        let user = self.tokens.get(token).cloned();
        Box::pin(async move { user })
    }
}

/// One CSV record as Go's encoding/csv reads it with TrimLeadingSpace: fields split at commas,
/// a field in double quotes may hold commas and `""` for a quote.
fn csv_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("{c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// A user's name, uid and groups.
    type Want = (&'static str, &'static str, &'static [&'static str]);

    #[test]
    fn reads_upstreams_csv() {
        // k8s: tokenfile_test.go's records.
        let file = TokenFile::parse(
            "token1,user1,uid1\n\
             token2,user2,uid2\n\
             token3,user3,uid3,\"group1,group2\"\n\
             token4,user4,uid4,\"group2\"\n\
             token5,user5,uid5,group5\n\
             token6,user6,uid6,group5,otherdata\n\
             \n\
             ,user8,uid8\n",
        )
        .unwrap();
        assert_eq!(file.len(), 6);
        let cases: &[(&str, Option<Want>)] = &[
            ("token1", Some(("user1", "uid1", &[]))),
            ("token3", Some(("user3", "uid3", &["group1", "group2"]))),
            ("token4", Some(("user4", "uid4", &["group2"]))),
            ("token5", Some(("user5", "uid5", &["group5"]))),
            ("token6", Some(("user6", "uid6", &["group5"]))),
            ("token7", None),
            ("", None),
            ("user1", None),
        ];
        for (token, want) in cases {
            let got = file.authenticate(token).now_or_never().unwrap();
            let got = got
                .as_ref()
                .map(|u| (u.name.as_str(), u.uid.as_str(), u.groups.clone()));
            let want = want.map(|(n, u, g)| (n, u, g.iter().map(|s| s.to_string()).collect()));
            assert_eq!(got, want, "{token}");
        }
    }

    #[test]
    fn refuses_short_or_broken_records() {
        for bad in ["token1,user1", "token1", "t,u,i,\"unclosed", "t,u,\"i\"x"] {
            assert!(TokenFile::parse(bad).is_err(), "{bad}");
        }
    }
}
