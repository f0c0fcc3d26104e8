# GNU Make fragment: drive a model-bridge pipeline with `make -j N`, each per-scenario study a target of its own,
# so studies run in parallel and can be sent to a cluster by setting BRIDGE_JOB.
#
#   BRIDGE_CONFIG := my_bridge.yaml
#   include $(shell kakehashi bridge make-fragment)
#   # make -j 8 bridge-report
#   # make -j 50 bridge-report BRIDGE_JOB="kakehashi job slurm cpu --walltime 2:00:00 logs/study.log --"
#
# Every target is a file the pipeline writes, so an interrupted `make` picks up where it stopped.

KAKEHASHI ?= kakehashi
BRIDGE_CONFIG ?= bridge.yaml
BRIDGE_OVERRIDES ?=
BRIDGE_JOB ?=
BRIDGE_WS := $(shell $(KAKEHASHI) config get $(BRIDGE_CONFIG) workspace $(BRIDGE_OVERRIDES))
BRIDGE_RUN = $(KAKEHASHI) bridge $(1) $(BRIDGE_CONFIG) $(BRIDGE_OVERRIDES)

.PHONY: bridge-studies bridge-report

# written by the prepare stage: one rule per (scenario, model) study and BRIDGE_STUDY_RESULTS listing them;
# make remakes it first (running prepare) and restarts with the rules in place
$(BRIDGE_WS)/studies.mk: $(BRIDGE_CONFIG)
	$(call BRIDGE_RUN,prepare) --force
-include $(BRIDGE_WS)/studies.mk

bridge-studies: $(BRIDGE_STUDY_RESULTS)

$(BRIDGE_WS)/stages/optimize.json: $(BRIDGE_STUDY_RESULTS)
	$(call BRIDGE_RUN,optimize)
$(BRIDGE_WS)/stages/collect.json: $(BRIDGE_WS)/stages/optimize.json
	$(call BRIDGE_RUN,collect)
$(BRIDGE_WS)/stages/fit.json: $(BRIDGE_WS)/stages/collect.json
	$(call BRIDGE_RUN,fit)
$(BRIDGE_WS)/stages/evaluate.json: $(BRIDGE_WS)/stages/fit.json
	$(call BRIDGE_RUN,evaluate)
$(BRIDGE_WS)/stages/report.json: $(BRIDGE_WS)/stages/evaluate.json
	$(call BRIDGE_RUN,report)

bridge-report: $(BRIDGE_WS)/stages/report.json
