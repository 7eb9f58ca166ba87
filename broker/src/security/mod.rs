//! Security: who a connection is (users file, JWT, client certificates),
//! what it may do (ACLs), and how repeated failed logins are slowed down.
