//! The portable schema, kept by hand for both backends (see `migrations/`).

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        slug -> Text,
        plan -> Text,
        seat_limit_override -> Nullable<Integer>,
        billing_owner_id -> Nullable<Text>,
        admins_can_manage_users -> Bool,
        password_min_length -> Integer,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sso_required -> Bool,
        sso_required_for_owners -> Bool,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        username -> Nullable<Text>,
        full_name -> Text,
        avatar_url -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        must_change_password -> Bool,
        auth_version -> Integer,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        home_tenant_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    regions (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        parent_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    memberships (tenant_id, user_id) {
        tenant_id -> Text,
        user_id -> Text,
        role -> Text,
        status -> Text,
        job_title -> Nullable<Text>,
        department -> Nullable<Text>,
        section -> Nullable<Text>,
        manager_id -> Nullable<Text>,
        search_text -> Text,
        sort_name -> Text,
        sort_email -> Text,
        auth_version -> Integer,
        version -> Integer,
        last_login_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    member_os_usernames (tenant_id, user_id) {
        tenant_id -> Text,
        user_id -> Text,
        os_username -> Text,
        os_username_key -> Text,
    }
}

diesel::table! {
    membership_regions (tenant_id, user_id, region_id) {
        tenant_id -> Text,
        user_id -> Text,
        region_id -> Text,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        tenant_id -> Text,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        action -> Text,
        target_type -> Text,
        target_id -> Nullable<Text>,
        before_state -> Nullable<Text>,
        after_state -> Nullable<Text>,
        request_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
        actor_name -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        private_key -> Text,
        public_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, idem_key) {
        tenant_id -> Text,
        idem_key -> Text,
        actor_id -> Text,
        request_hash -> Text,
        status -> Integer,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    member_list_versions (tenant_id) {
        tenant_id -> Text,
        version -> BigInt,
        content -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        kind -> Text,
        recipient -> Text,
        sealed_message -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Text,
        user_id -> Text,
        token_digest -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        tenant_id -> Nullable<Text>,
        refresh_digest -> Text,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        end_reason -> Nullable<Text>,
        sso_connection_id -> Nullable<Text>,
    }
}

diesel::table! {
    rotated_refresh_tokens (token_digest) {
        token_digest -> Text,
        session_id -> Text,
        rotated_at -> Timestamp,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        tenant_id -> Text,
        email -> Text,
        role -> Text,
        regions -> Text,
        token_digest -> Text,
        invited_by -> Nullable<Text>,
        status -> Text,
        expires_at -> Timestamp,
        sent_count -> Integer,
        last_sent_at -> Timestamp,
        accepted_by -> Nullable<Text>,
        accepted_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    departments (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sections (id) {
        id -> Text,
        tenant_id -> Text,
        department_id -> Text,
        name -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        name -> Text,
        kind -> Text,
        role -> Text,
        regions -> Text,
        prefix -> Text,
        secret_digest -> Text,
        previous_digest -> Nullable<Text>,
        previous_expires_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        version -> Integer,
    }
}

diesel::table! {
    enrollments (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        user_id -> Text,
        api_key_id -> Text,
        agent_id -> Text,
        hostname -> Text,
        os -> Nullable<Text>,
        os_username -> Text,
        rejected_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    profile_completions (token_digest) {
        token_digest -> Text,
        tenant_id -> Text,
        user_id -> Text,
        enrollment_id -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    email_confirmations (token_digest) {
        token_digest -> Text,
        tenant_id -> Text,
        user_id -> Text,
        email -> Text,
        full_name -> Text,
        password_hash -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    event_counters (tenant_id) {
        tenant_id -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    events (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        id -> Text,
        event_type -> Text,
        occurred_at -> Timestamp,
        payload -> Text,
    }
}

diesel::table! {
    webhooks (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        url -> Text,
        description -> Nullable<Text>,
        event_types -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        failing_since -> Nullable<Timestamp>,
        sealed_secret -> Text,
        previous_sealed_secret -> Nullable<Text>,
        previous_expires_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
    }
}

diesel::table! {
    webhook_cursors (tenant_id, webhook_id) {
        tenant_id -> Text,
        webhook_id -> Text,
        cursor_seq -> BigInt,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_deliveries (tenant_id, webhook_id, id) {
        tenant_id -> Text,
        id -> Text,
        webhook_id -> Text,
        event_id -> Text,
        event_type -> Text,
        body -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        locked_until -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_duration_ms -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    scim_users (tenant_id, user_id) {
        tenant_id -> Text,
        user_id -> Text,
        user_name -> Text,
        user_name_key -> Text,
        external_id -> Nullable<Text>,
        attributes -> Text,
    }
}

diesel::table! {
    groups (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        display_name -> Text,
        display_name_key -> Text,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    group_members (tenant_id, group_id, user_id) {
        tenant_id -> Text,
        group_id -> Text,
        user_id -> Text,
    }
}

diesel::table! {
    group_role_mappings (tenant_id, group_id) {
        tenant_id -> Text,
        group_id -> Text,
        role -> Text,
    }
}

diesel::table! {
    group_role_regions (tenant_id, group_id, region_id) {
        tenant_id -> Text,
        group_id -> Text,
        region_id -> Text,
    }
}

diesel::table! {
    scim_settings (tenant_id) {
        tenant_id -> Text,
        default_role -> Text,
        version -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    scim_default_regions (tenant_id, region_id) {
        tenant_id -> Text,
        region_id -> Text,
    }
}

diesel::table! {
    tenant_domains (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        domain -> Text,
        challenge_token -> Text,
        verified_at -> Nullable<Timestamp>,
        last_checked_at -> Nullable<Timestamp>,
        last_check_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
    }
}

diesel::table! {
    domain_claims (domain) {
        domain -> Text,
        tenant_id -> Text,
        domain_id -> Text,
        claimed_at -> Timestamp,
    }
}

diesel::table! {
    sso_connections (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        protocol -> Text,
        name -> Text,
        enabled -> Bool,
        settings -> Text,
        sealed_secret -> Nullable<Text>,
        jit_enabled -> Bool,
        jit_role -> Text,
        jit_regions -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
    }
}

diesel::table! {
    sso_requests (id) {
        id -> Text,
        tenant_id -> Text,
        connection_id -> Text,
        protocol -> Text,
        nonce -> Nullable<Text>,
        sealed_verifier -> Nullable<Text>,
        binding_digest -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sso_assertions (tenant_id, connection_id, assertion_id) {
        tenant_id -> Text,
        connection_id -> Text,
        assertion_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    sso_codes (code_digest) {
        code_digest -> Text,
        user_id -> Text,
        tenant_id -> Text,
        connection_id -> Text,
        binding_digest -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(memberships -> tenants (tenant_id));
diesel::joinable!(regions -> tenants (tenant_id));
diesel::joinable!(sections -> departments (department_id));
diesel::allow_tables_to_appear_in_same_query!(
    tenant_domains,
    domain_claims,
    sso_connections,
    sso_requests,
    sso_assertions,
    sso_codes,
    api_keys,
    tenants,
    users,
    regions,
    memberships,
    membership_regions,
    audit_events,
    signing_keys,
    idempotency_keys,
    sessions,
    departments,
    sections,
    enrollments,
    member_os_usernames,
    profile_completions,
    email_confirmations,
    event_counters,
    events,
    webhooks,
    webhook_deliveries,
    webhook_cursors,
    scim_users,
    groups,
    group_members,
    group_role_mappings,
    group_role_regions,
    scim_settings,
    scim_default_regions,
);
