DROP TABLE events_unnumbered;
DROP SEQUENCE events_unnumbered_pos;
DROP FUNCTION roster_number_events();
