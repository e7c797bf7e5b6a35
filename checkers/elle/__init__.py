"""Elle-style transactional checkers: list-append and rw-register histories as dependency graphs."""

from checkers.elle.consistency import MODELS, forbidden_anomalies, impossible_models
from checkers.elle.explain import write_cycle_dots
from checkers.elle.list_append import ListAppendChecker, check_list_append
from checkers.elle.rw_register import RwRegisterChecker, check_rw_register

__all__ = ["MODELS", "ListAppendChecker", "RwRegisterChecker", "check_rw_register", "check_list_append", "forbidden_anomalies", "impossible_models",
           "write_cycle_dots"]
