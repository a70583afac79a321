-- Departments and their sections: tenant resources. A member's `department` and `section` hold
-- their names (renaming one renames it on every member, in the same transaction).
CREATE TABLE departments (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE sections (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    department_id TEXT NOT NULL REFERENCES departments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (department_id, name)
);
CREATE INDEX sections_tenant ON sections (tenant_id);

-- The departments and sections members already name become resources.
INSERT INTO departments (id, tenant_id, name, created_at, updated_at)
    SELECT gen_random_uuid()::text, tenant_id, department, MIN(created_at), MIN(created_at)
    FROM memberships WHERE department IS NOT NULL GROUP BY tenant_id, department;
INSERT INTO sections (id, tenant_id, department_id, name, created_at, updated_at)
    SELECT gen_random_uuid()::text, m.tenant_id, d.id, m.section, MIN(m.created_at), MIN(m.created_at)
    FROM memberships m JOIN departments d ON d.tenant_id = m.tenant_id AND d.name = m.department
    WHERE m.section IS NOT NULL GROUP BY m.tenant_id, d.id, m.section;
