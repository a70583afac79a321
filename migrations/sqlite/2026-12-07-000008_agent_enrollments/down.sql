DROP TABLE email_confirmations;
DROP TABLE profile_completions;
DROP TABLE enrollments;
DROP TABLE member_os_usernames;
