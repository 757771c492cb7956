"""kluis.domain"""
