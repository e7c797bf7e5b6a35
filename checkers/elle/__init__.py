"""Elle-style transactional checkers: list-append and rw-register histories as dependency graphs."""

from splitbrain.checkers.elle.consistency import MODELS, forbidden_anomalies, impossible_models
from splitbrain.checkers.elle.explain import write_cycle_dots
from splitbrain.checkers.elle.list_append import ListAppendChecker, check_list_append
from splitbrain.checkers.elle.rw_register import RwRegisterChecker, check_rw_register

__all__ = ["MODELS", "ListAppendChecker", "RwRegisterChecker", "check_rw_register", "check_list_append", "forbidden_anomalies", "impossible_models",
           "write_cycle_dots"]
