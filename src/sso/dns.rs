//! Domain verification's DNS lookup: the TXT records of `_roster-challenge.<domain>`. (To be written.)
