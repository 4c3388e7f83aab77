"""The public side: job boards, application forms and the applicant portal."""
