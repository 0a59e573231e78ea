"""PostgreSQL's per-scope memory counts (schema migration 2), so that `CountMemories` by project, agents
and types reads a few rows of `alma_memory_counts` instead of the memories.

Triggers keep the table in the writing transaction: exact under every writer (concurrent ones queue on
the counter's row; raw SQL and code that knows nothing of the table included). Inserts and deletes are
counted per statement, from their transition tables (a batch of 1,000 memories is one upsert of each
scope's count); an update counts only when it moves a memory to another (project, agent, type). The
migration fills the table under a lock that keeps writers out until the triggers exist. The functions
run with `SET search_path FROM CURRENT` (the store's schema), so they find this schema's table whatever
the writing session's search_path.
"""

from __future__ import annotations

__all__ = ["COUNTS_MIGRATION"]

COUNTS_MIGRATION = """
    CREATE TABLE alma_memory_counts (
        project_id TEXT NOT NULL, agent TEXT NOT NULL, type TEXT NOT NULL, n BIGINT NOT NULL,
        PRIMARY KEY (project_id, agent, type)
    );
    LOCK TABLE alma_memories IN SHARE ROW EXCLUSIVE MODE;
    INSERT INTO alma_memory_counts
        SELECT project_id, agent, type, COUNT(*) FROM alma_memories GROUP BY project_id, agent, type;
    CREATE FUNCTION alma_count_inserted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        INSERT INTO alma_memory_counts (project_id, agent, type, n)
            SELECT project_id, agent, type, COUNT(*) FROM alma_inserted GROUP BY project_id, agent, type
            ON CONFLICT (project_id, agent, type) DO UPDATE SET n = alma_memory_counts.n + EXCLUDED.n;
        RETURN NULL;
    END $$;
    CREATE FUNCTION alma_count_deleted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        UPDATE alma_memory_counts AS c SET n = c.n - d.k
            FROM (SELECT project_id, agent, type, COUNT(*) AS k FROM alma_deleted
                  GROUP BY project_id, agent, type) AS d
            WHERE c.project_id = d.project_id AND c.agent = d.agent AND c.type = d.type;
        RETURN NULL;
    END $$;
    CREATE FUNCTION alma_count_moved() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        UPDATE alma_memory_counts SET n = n - 1
            WHERE project_id = OLD.project_id AND agent = OLD.agent AND type = OLD.type;
        INSERT INTO alma_memory_counts VALUES (NEW.project_id, NEW.agent, NEW.type, 1)
            ON CONFLICT (project_id, agent, type) DO UPDATE SET n = alma_memory_counts.n + 1;
        RETURN NULL;
    END $$;
    CREATE TRIGGER alma_memory_counts_ai AFTER INSERT ON alma_memories
        REFERENCING NEW TABLE AS alma_inserted FOR EACH STATEMENT EXECUTE FUNCTION alma_count_inserted();
    CREATE TRIGGER alma_memory_counts_ad AFTER DELETE ON alma_memories
        REFERENCING OLD TABLE AS alma_deleted FOR EACH STATEMENT EXECUTE FUNCTION alma_count_deleted();
    CREATE TRIGGER alma_memory_counts_au AFTER UPDATE OF project_id, agent, type ON alma_memories FOR EACH ROW
        WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.agent IS DISTINCT FROM NEW.agent
              OR OLD.type IS DISTINCT FROM NEW.type)
        EXECUTE FUNCTION alma_count_moved();
"""
